"""The Integrity VM emulator: a persistent world of VM Hosts driven by hpvm* command lines.

Providers use `World.open(path).execute(host, argv)` exactly as they would run a command
over SSH on a real VM Host. See docs/emulator-fidelity.md for what is modelled and how.

The names below are imported on first use (PEP 562), so importing a small module of
this package (`runtime.crashpoints`, which `core.apply` uses) does not load the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ivmctl.runtime.world import CommandResult, FaultInfo, HostInfo, LogEntry, World

__all__ = ["CommandResult", "FaultInfo", "HostInfo", "LogEntry", "World"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ivmctl.runtime import world

        value = getattr(world, name)
        globals()[name] = value  # later look-ups are plain attribute reads
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
