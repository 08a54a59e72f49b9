"""The Integrity VM emulator: a persistent world of VM Hosts driven by hpvm* command lines.

Providers use `World.open(path).execute(host, argv)` exactly as they would run a command
over SSH on a real VM Host. See docs/emulator-fidelity.md for what is modelled and how.
"""

from ivmctl.runtime.world import CommandResult, FaultInfo, HostInfo, LogEntry, World

__all__ = ["CommandResult", "FaultInfo", "HostInfo", "LogEntry", "World"]
