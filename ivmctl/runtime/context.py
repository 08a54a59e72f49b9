"""What one hpvm* command works with: its transaction, its host, the time, and its output.

A command refuses by raising `Refused` with the lines the real command prints; the world
rolls its changes back, keeps the command log entry, and returns the exit status.
"""

from __future__ import annotations

import getopt
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ivmctl.runtime.data import Guest, Host, guest_by_name, guest_by_number
from ivmctl.runtime.reads import HostReads

EXIT_OK = 0
EXIT_ERROR = 1  # a rule refused the command
EXIT_USAGE = 2  # the command line is malformed
EXIT_NOT_IMPLEMENTED = 3  # valid on a real host, not modelled by the emulator
EXIT_NOT_FOUND = 127  # no such command on the host
EXIT_UNREACHABLE = 255  # what ssh returns when it cannot reach the host


class Refused(Exception):
    """A command refused: the stderr lines it prints and its exit status."""

    def __init__(self, *lines: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(lines[0] if lines else "refused")
        self.lines = list(lines)
        self.exit_code = exit_code


@dataclass(kw_only=True)
class Ctx:
    """One command's working set."""

    conn: sqlite3.Connection
    host: Host
    command: str  # argv[0], e.g. hpvmmodify
    now: float
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    # changes kept even when the command fails (a consumed fault, for instance)
    keep_on_failure: list[Callable[[sqlite3.Connection], object]] = field(default_factory=list)
    # the host's rows as listings read them; the listings of one batch share one
    reads: HostReads | None = None

    def shared(self) -> HostReads:
        """The host's rows for listings, read once for this command or its batch."""
        if self.reads is None:
            self.reads = HostReads(self.conn, self.host)
        return self.reads

    def error(self, guest: str | None, text: str) -> str:
        return f"{self.command}: ERROR ({guest}): {text}" if guest else f"{self.command}: {text}"

    def warning(self, guest: str | None, text: str) -> str:
        return f"{self.command}: WARNING ({guest}): {text}" if guest else f"{self.command}: {text}"

    def refuse(self, guest: str | None, *texts: str, summary: str | None = None) -> Refused:
        lines = [self.error(guest, t) for t in texts]
        if summary:
            lines.append(f"{self.command}: {summary}")
        return Refused(*lines)

    def not_implemented(self, what: str) -> Refused:
        return Refused(
            f"{self.command}: {what} is not implemented by the emulator",
            exit_code=EXIT_NOT_IMPLEMENTED,
        )

    def usage(self, text: str) -> Refused:
        return Refused(f"{self.command}: {text}", exit_code=EXIT_USAGE)

    # --- option parsing -------------------------------------------------------------------
    def getopt(self, args: Sequence[str], spec: str) -> tuple[list[tuple[str, str]], list[str]]:
        """getopt-style parsing; an option the emulator lacks is reported as such."""
        try:
            return getopt.getopt(list(args), spec)
        except getopt.GetoptError as exc:
            if exc.opt and f"{exc.opt}:" not in spec and exc.opt not in spec:
                dashes = "--" if exc.msg.startswith("option --") else "-"
                raise self.not_implemented(f"{dashes}{exc.opt}") from None
            raise self.usage(str(exc)) from None

    def select_guest(self, opts: Sequence[tuple[str, str]], *, required: bool = True) -> Guest:
        """The guest named by -P name or -p number; refused when missing or unknown."""
        name = next((v for o, v in opts if o == "-P"), None)
        number = next((v for o, v in opts if o == "-p"), None)
        if name is None and number is None:
            raise self.usage("Either -P <name> or -p <number> is required.")
        if name is not None:
            guest = guest_by_name(self.conn, self.host.id, name)
            if guest is None:
                raise self.refuse(name, f"Unable to find virtual machine '{name}'.")
            return guest
        try:
            num = int(str(number))
        except ValueError:
            raise self.usage(f"Invalid virtual machine number '{number}'.") from None
        guest = guest_by_number(self.conn, self.host.id, num)
        if guest is None:
            raise self.refuse(None, f"ERROR: Unable to find virtual machine number {num}.")
        return guest
