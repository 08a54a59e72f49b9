"""What a command line is, told from its words alone: its command, and whether it only lists.

`World` and the worker pool ask this before every batch, and a reader whose listings
are all kept (`memo.py`) needs nothing more: so it lives apart from the commands, which
a process imports only when it runs one.
"""

from __future__ import annotations

from collections.abc import Sequence


def command_kind(name: str) -> str:
    """`start`, `hpvmstart` and `/opt/hpvm/bin/hpvmstart` all mean `hpvmstart`."""
    base = name.rsplit("/", 1)[-1]
    return base if base == "*" or base.startswith(("hpvm", "vpar")) else f"hpvm{base}"


READ_ONLY = frozenset({"hpvmstatus"})
# Options that make hpvmnet / hpvmdevmgmt change something; without them they only list.
_WRITING_OPTIONS = {
    "hpvmnet": frozenset({"-c", "-b", "-h", "-r", "-d", "-u"}),
    "hpvmdevmgmt": frozenset({"-a", "-m", "-d", "-S"}),
}


def is_read_only(argv: Sequence[str]) -> bool:
    """Whether a command line only reads (a listing), so it may run on a read snapshot.

    Decided from the options alone, before parsing, and conservatively: every letter
    of an option cluster counts, even one that is really a glued value (`-Svswprod`
    reads as writing because of its `r`), which only costs the write lock.
    """
    name = argv[0].rsplit("/", 1)[-1] if argv else ""
    if name in READ_ONLY:
        return True
    writing = _WRITING_OPTIONS.get(name)
    if writing is None:
        return False
    return not any(
        f"-{letter}" in writing for arg in argv[1:] if arg.startswith("-") for letter in arg[1:]
    )
