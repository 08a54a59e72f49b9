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

from ivmctl.runtime.data import Host, guests_started_since
from ivmctl.runtime.store import meta_int

# (host id, argv as logged, revision, time made, exit status, stdout, stderr)
KeptRow = tuple[int, str, int, float, int, str, str]
# (exit status, stdout, stderr)
Answer = tuple[int, str, str]


class Memo:
    """One host's kept listings, as one read snapshot shows them."""

    def __init__(self, conn: sqlite3.Connection, host_id: int) -> None:
        self.host_id = host_id
        self.revision = meta_int(conn, "revision")
        self._settled_at: float | None = None  # see may_keep
        self._kept: dict[str, tuple[float, int, str, str]] = {
            argv: (at, code, out, err)
            for argv, at, code, out, err in conn.execute(
                "SELECT argv, at, exit_code, stdout, stderr FROM listings "
                "WHERE host_id=? AND revision=?",
                (host_id, self.revision),
            )
        }

    def get(self, argv: str, now: float) -> Answer | None:
        """The listing `argv` kept at this revision, if it was made at or before `now`."""
        kept = self._kept.get(argv)
        if kept is None or now < kept[0]:
            return None
        return kept[1], kept[2], kept[3]

    def may_keep(self, conn: sqlite3.Connection, host: Host, now: float) -> bool:
        """Whether the host's listings made at `now` stay the same at any later time (no
        guest of it is booting), until the world changes.

        Only guests started within the boot delay (and a second, against rounding) can
        be booting; the index finds them without reading the host's other guests. Once
        settled, a host stays settled later in the same snapshot."""
        if self._settled_at is not None and now >= self._settled_at:
            return True
        recent = guests_started_since(conn, host.id, now - host.boot_delay - 1.0)
        if all((ends := guest.boot_ends(host)) is None or now >= ends for guest in recent):
            self._settled_at = now
            return True
        return False

    def row(self, argv: str, now: float, answer: Answer) -> KeptRow:
        """What to keep of a listing made at `now` (ask `may_keep` first)."""
        return (self.host_id, argv, self.revision, now, *answer)


def keep(conn: sqlite3.Connection, rows: Sequence[KeptRow]) -> None:
    """Write the rows still of the current revision, replacing their hosts' older ones."""
    revision = meta_int(conn, "revision")
    current = [row for row in rows if row[2] == revision]
    if not current:
        return
    hosts = sorted({row[0] for row in current})
    conn.executemany(
        "DELETE FROM listings WHERE host_id=? AND revision<>?", [(h, revision) for h in hosts]
    )
    conn.executemany(
        "INSERT OR REPLACE INTO listings (host_id, argv, revision, at, exit_code, stdout, "
        "stderr) VALUES (?, ?, ?, ?, ?, ?, ?)",
        current,
    )
