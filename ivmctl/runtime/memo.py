"""Listings kept for the state they show, in the world file, and given again.

A listing (`hpvmstatus`, `hpvmnet`, `hpvmdevmgmt -l`: `kinds.is_read_only`) shows the
world's rows and, while a guest boots (On (EFI) turns into On (OS)), the clock. At 1,000
hosts, producing their 12 MB of listings again for every refresh was most of an unchanged
plan, on the CPUs ivmctl itself needs; real VM Hosts answer from their own. So a listing
is kept with the world's `revision`, which every write transaction moves on
(`Store.transaction`), and given again while the revision is the same:

* a listing is kept only when no guest of its host is booting at the time it was made,
  and given only at or after that time (a test clock that goes back gets a fresh one):
  nothing else in a listing depends on the clock;
* kept listings are written with the listings' log rows (`World.flush_log`), only when the
  revision is still the one they were made at; a host's listings of other revisions are
  deleted then, so the table holds at most one revision per host;
* every listing is still logged, given again or not.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ivmctl.runtime.data import guests_started_since, host_by_id
from ivmctl.runtime.store import meta_int

# (host id, argv as logged, revision, time made, exit status, stdout, stderr)
KeptRow = tuple[int, str, int, float, int, str, str]
# (exit status, stdout, stderr)
Answer = tuple[int, str, str]


class Memo:
    """One host's kept listings, as one read snapshot shows them."""

    def __init__(self, conn: sqlite3.Connection, host_id: int) -> None:
        self.host_id = host_id
        self.revision = 0
        self._kept: dict[str, tuple[float, int, str, str]] = {}
        # one query for both: this runs before every batch of listings, apply's too
        for revision, argv, at, code, out, err in conn.execute(
            "SELECT CAST(m.value AS INTEGER), l.argv, l.at, l.exit_code, l.stdout, l.stderr "
            "FROM meta m LEFT JOIN listings l "
            "ON l.host_id=? AND l.revision=CAST(m.value AS INTEGER) WHERE m.key='revision'",
            (host_id,),
        ):
            self.revision = revision
            if argv is not None:
                self._kept[argv] = (at, code, out, err)

    def get(self, argv: str, now: float) -> Answer | None:
        """The listing `argv` kept at this revision, if it was made at or before `now`."""
        kept = self._kept.get(argv)
        if kept is None or now < kept[0]:
            return None
        return kept[1], kept[2], kept[3]

    def row(self, argv: str, now: float, answer: Answer) -> KeptRow:
        """A listing made at `now`, to keep if `keep` finds it may be."""
        return (self.host_id, argv, self.revision, now, *answer)


def keep(conn: sqlite3.Connection, rows: Sequence[KeptRow]) -> None:
    """Write the rows still of the current revision whose host had no guest booting when
    they were made, replacing their hosts' listings of older revisions.

    The revision has not moved, so the rows read here are the ones the listings showed.
    Only guests started within the boot delay (and a second, against rounding) can have
    been booting; the index finds them without reading the host's other guests."""
    revision = meta_int(conn, "revision")
    by_host: dict[int, list[KeptRow]] = {}
    for row in rows:
        if row[2] == revision:
            by_host.setdefault(row[0], []).append(row)
    keepable: list[KeptRow] = []
    for host_id, made in sorted(by_host.items()):
        host = host_by_id(conn, host_id)
        if host is None:
            continue
        earliest = min(row[3] for row in made)
        recent = guests_started_since(conn, host_id, earliest - host.boot_delay - 1.0)
        ends = [end for guest in recent if (end := guest.boot_ends(host)) is not None]
        keepable += [row for row in made if all(row[3] >= end for end in ends)]
    if not keepable:
        return
    conn.executemany(
        "DELETE FROM listings WHERE host_id=? AND revision<>?",
        [(h, revision) for h in sorted({row[0] for row in keepable})],
    )
    conn.executemany(
        "INSERT OR REPLACE INTO listings (host_id, argv, revision, at, exit_code, stdout, "
        "stderr) VALUES (?, ?, ?, ?, ?, ?, ?)",
        keepable,
    )
