"""How a plan reads for a person: grouped by host, one symbol per action, reasons below.

Restarts and migrations are spelled out in capitals so nobody misses them; unchanged
fields are collapsed into a count; the summary line ends the output. The same text
is produced with or without colour (tests read the plain form).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.control import strip_control_codes
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from ivmctl.collector import collector_paused
from ivmctl.plan.graph import waves
from ivmctl.plan.model import Action, Change, ChangeHow, FieldChange, OpKind, Plan
from ivmctl.rules import format_memory_display

SYMBOLS: dict[Action, tuple[str, str]] = {
    Action.CREATE: ("+", "green"),
    Action.DELETE: ("-", "red"),
    Action.UPDATE: ("~", "yellow"),
    Action.RESTART: ("↻", "magenta"),
    Action.MIGRATE: ("→", "cyan"),
    Action.START: ("▶", "green"),
    Action.STOP: ("■", "red"),
    Action.REPLACE: ("-/+", "red"),
    Action.ADOPT: ("⇐", "blue"),
    Action.NOOP: ("=", "dim"),
}

HOW_NOTES: dict[ChangeHow, str] = {
    ChangeHow.ONLINE: "online",
    ChangeHow.NEEDS_OFF: "needs the guest Off",
    ChangeHow.IGNORED: "ignored (lifecycle.ignore_changes)",
    ChangeHow.MOVE: "moves the guest",
}


def _headline(change: Change) -> str:
    if change.action is Action.CREATE:
        return "will be created"
    if change.action is Action.DELETE:
        return "will be DESTROYED"
    if change.action is Action.UPDATE:
        return "will be updated online"
    if change.action is Action.RESTART:
        return "will RESTART (stop, modify, start)"
    if change.action is Action.MIGRATE:
        source = (change.before or {}).get("host", "?")
        kinds = [op.kind for op in change.operations]
        if any(op.kind is OpKind.GUEST_MIGRATE and op.params.get("online")
               for op in change.operations):  # fmt: skip
            how = "online"
        else:
            steps = [word for kind, word in ((OpKind.GUEST_STOP, "stop"),
                     (OpKind.GUEST_MIGRATE, "move"), (OpKind.GUEST_START, "start"))
                     if kind in kinds]  # fmt: skip
            how = "offline: " + ", ".join(steps)
        return f"will MIGRATE from {source} to {change.host} ({how})"
    if change.action is Action.START:
        return "will be started"
    if change.action is Action.STOP:
        return "will be stopped"
    if change.action is Action.REPLACE:
        return "will be REPLACED (destroyed and created)"
    if change.action is Action.ADOPT:
        return "will be adopted (ivmctl will manage it from now on)"
    return "unchanged"


def shown_value(value: Any) -> str:
    """A field's value as plans and drift reports print it: strings quoted, None spelt out."""
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _field_line(field: FieldChange) -> str:
    arrow = f"{shown_value(field.before)} -> {shown_value(field.after)}"
    return f"{field.path}: {arrow}  ({HOW_NOTES[field.how]})"


def _mb(value: Any) -> str:
    return format_memory_display(value) if isinstance(value, int) else str(value)


def _pct(value: Any) -> str:
    return f"{value:g}%" if isinstance(value, int | float) else "?"


def _device_line(kind: str, view: dict[str, Any]) -> str:
    extras = [str(view.get("adapter"))]
    if view.get("size_mb"):
        extras.append(_mb(view["size_mb"]))
    if view.get("shared"):
        extras.append("shared")
    if view.get("address"):
        extras.append(f"at {view['address']}")
    return f"{kind:<5} {view.get('backing')} {view.get('path')}  ({', '.join(extras)})"


def _nic_line(view: dict[str, Any]) -> str:
    extras = [str(view.get("adapter"))]
    if view.get("vlan") is not None:
        extras.append(f"vlan {view['vlan']}")
    extras.append(f"mac {view['mac'] or 'auto'}")
    if view.get("port") is not None:
        extras.append(f"port {view['port']}")
    return f"nic   {view.get('vswitch')}  ({', '.join(extras)})"


def _created_fields(address: str, after: dict[str, Any]) -> Iterable[str]:
    """A created object in a few readable lines instead of a dict dump."""
    if address.startswith("host."):
        nics = " ".join(after.get("nics") or []) or "no NICs"
        yield (
            f"{after.get('cores')} cores, {_mb(after.get('memory_mb'))}, {nics}, "
            f"Integrity VM {after.get('version')}"
        )
        return
    if address.startswith("vswitch."):
        nic = after.get("nic")
        yield f"uplink {nic}" if nic else "host-local (no uplink)"
        return
    ent = after.get("entitlement") or {}
    line = (
        f"{after.get('vcpus')} vCPU, entitlement {_pct(ent.get('min_pct'))}"
        f"..{_pct(ent.get('max_pct'))}, memory {_mb(after.get('memory_mb'))}"
    )
    dyn = after.get("dynamic_memory")
    if dyn:
        line += (
            f" (dynamic {_mb(dyn['min_mb'])}..{_mb(dyn['max_mb'])}, target {_mb(dyn['target_mb'])})"
        )
    yield line
    yield f"os {after.get('os')}, power {after.get('power')}, start {after.get('start')}"
    if after.get("label"):
        yield f'label "{after["label"]}"'
    for disk in after.get("disks") or []:
        yield _device_line("disk", disk)
    for dvd in after.get("dvds") or []:
        yield _device_line("dvd", dvd)
    for nic in after.get("nics") or []:
        yield _nic_line(nic)


def change_lines(change: Change) -> list[tuple[str, str]]:
    """The lines of one change as (text, style) pairs, without indentation of the group."""
    symbol, style = SYMBOLS[change.action]
    lines = [(f"{symbol} {change.address} {_headline(change)}", style)]
    if change.action is Action.CREATE and change.after:
        lines += [
            (f"    {text}", "") for text in _created_fields(change.address, dict(change.after))
        ]
    for field in change.fields:
        lines.append((f"    {_field_line(field)}", ""))
    if change.fields and change.before and change.after:  # views are built when read
        total = len(set(change.before) | set(change.after))
        unchanged = max(0, total - len({f.path.split(".")[0].split("[")[0] for f in change.fields}))
        if unchanged:
            lines.append((f"    # ({unchanged} unchanged fields hidden)", "dim"))
    lines += [(f"    # {reason}", "dim") for reason in change.reasons]
    return lines


def format_plan(plan: Plan, *, show_noop: bool = False) -> list[tuple[str, str]]:
    """The whole plan as (text, style) lines: grouped by host, then the summary."""
    lines: list[tuple[str, str]] = []
    changes = plan.changes if show_noop else plan.actionable
    by_host: dict[str, list[Change]] = {}
    for change in changes:  # in plan order within each host
        by_host.setdefault(change.host, []).append(change)
    if changes:
        lines.append(("ivmctl will perform the following actions, in this order per host:", ""))
    for host in sorted(by_host):
        lines.append(("", ""))
        lines.append((f"host {host}", "bold"))
        for change in by_host[host]:
            lines += [(f"  {text}", style) for text, style in change_lines(change)]
    if plan.drift:
        lines.append(("", ""))
        lines.append(("Drift left alone (lifecycle.ignore_changes):", "bold"))
        lines += [(f"  {_field_line(field)}", "dim") for field in plan.drift]
    if plan.unmanaged:
        lines.append(("", ""))
        lines.append((f"Unmanaged, left alone: {', '.join(plan.unmanaged)}", "dim"))
    for warning in plan.warnings:
        lines.append((f"warning: {warning}", "yellow"))
    lines.append(("", ""))
    lines.append((plan.summary().line(), "bold"))
    rounds = waves(plan)
    if len(plan.actionable) > 1:
        widest = max(len(r) for r in rounds)
        lines.append(
            (
                f"{len(plan.actionable)} changes in {len(rounds)} "
                f"round{'' if len(rounds) == 1 else 's'} of the change graph; "
                f"up to {widest} can run at once (apply --parallelism).",
                "dim",
            )
        )
    return lines


def plan_text(plan: Plan, *, show_noop: bool = False) -> str:
    """The plan as plain text (what a pipeline log shows)."""
    return "\n".join(text for text, _ in format_plan(plan, show_noop=show_noop)) + "\n"


class _Lines:
    """(text, style) lines as one rich renderable: segments, not a Text object per line.

    Rich pays a fixed cost per `print` (terminal size, buffers) and per Text (spans,
    splitting), which for a plan of 100,000 lines took seconds. The bytes are those of
    printing each line as `Text(text, style=style)` with soft wrapping: control codes
    stripped, each line's style ending before its newline; the rare line with a tab or
    a newline goes through `Text` itself.
    """

    def __init__(self, lines: Sequence[tuple[str, str]]) -> None:
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        newline = Segment.line()
        styles: dict[str, Style | None] = {"": None}
        for line, name in self.lines:
            if "\t" in line or "\n" in line:  # rare: rich's own way, tab stops and all
                yield from console.render(Text(line, style=name), options)
                continue
            style = styles.get(name)
            if name not in styles:
                style = styles[name] = console.get_style(name)
            yield Segment(strip_control_codes(line), style)
            yield newline


# Lines per print, so that a long plan streams out instead of waiting for its last line.
PRINT_CHUNK_LINES = 4096


def print_plan(plan: Plan, *, console: Console | None = None, show_noop: bool = False) -> None:
    """Print the plan, in colour on a terminal."""
    console = console or Console(highlight=False)
    with collector_paused():
        lines = format_plan(plan, show_noop=show_noop)
    for start in range(0, len(lines), PRINT_CHUNK_LINES):
        console.print(_Lines(lines[start : start + PRINT_CHUNK_LINES]), soft_wrap=True, end="")
