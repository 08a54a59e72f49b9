"""`ivmctl status` output: one block per host with capacity bars and its guests."""

from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from ivmctl.core.status import HostRow

BAR_WIDTH = 24


def bar(used: float, total: float) -> Text:
    """A text bar `[#####.....]` with colour by fill level (plain in logs)."""
    share = 0.0 if total <= 0 else min(1.0, used / total)
    filled = round(share * BAR_WIDTH)
    style = "green" if share < 0.7 else "yellow" if share < 0.9 else "red"
    text = Text("[")
    text.append("#" * filled, style=style)
    text.append("." * (BAR_WIDTH - filled), style="dim")
    text.append("]")
    return text


def _gb(mb: int) -> str:
    return f"{mb / 1024:.1f} GB"


def host_block(row: HostRow) -> Group:
    title = Text(f"host {row.name}", style="bold")
    title.append(f"  Integrity VM {row.version}, {row.cores} cores, {_gb(row.memory_mb)}")
    capacity = Table.grid(padding=(0, 2))
    entitlement = bar(row.entitlement_used_pct, row.cores * 100)
    entitlement.append(f" {row.entitlement_used_pct:g}% of {row.cores * 100}% (core-percent)")
    memory = bar(row.memory_used_mb, row.pool_mb)
    memory.append(f" {_gb(row.memory_used_mb)} of {_gb(row.pool_mb)} guest pool")
    capacity.add_row("  entitlement", entitlement)
    capacity.add_row("  memory", memory)
    parts: list[Text | Table] = [title, capacity]
    if row.overcommitted:
        parts.append(Text("  running guests hold more than the host can admit", style="red"))
    guests = Table(box=None, padding=(0, 2), show_edge=False)
    for column in ("guest", "state", "vCPU", "entitlement", "memory", ""):
        guests.add_column(column)
    for guest in row.guests:
        marks = []
        if guest.drift:
            marks.append(f"drift: {', '.join(guest.drift)}")
        if not guest.managed:
            marks.append("unmanaged")
        guests.add_row(
            f"  {guest.name}",
            guest.state,
            str(guest.vcpus),
            f"{guest.entitlement_pct:g}%",
            _gb(guest.memory_mb),
            Text("; ".join(marks), style="yellow" if guest.drift else "dim"),
        )
    if row.guests:
        parts.append(guests)
    else:
        parts.append(Text("  no guests", style="dim"))
    return Group(*parts)


def print_status(rows: list[HostRow], *, console: Console | None = None) -> None:
    if console is None:
        console = Console(highlight=False, soft_wrap=True)
        if not console.is_terminal:
            console.width = 160  # logs: no wrapping of a guest's drift list at 80 columns
    if not rows:
        console.print("No hosts: nothing is declared and nothing is owned.")
        return
    for index, row in enumerate(rows):
        if index:
            console.print()
        console.print(host_block(row))
