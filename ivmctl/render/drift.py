"""How a drift report reads: drift first, then configuration changes not applied, then ignored.

Each group says what it means and what to do, so that a pipeline log is enough to act on.
The same text is produced with or without colour (tests read the plain form).
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from ivmctl.core.drift import DriftItem, DriftKind, DriftReport
from ivmctl.plan.model import ChangeHow
from ivmctl.render.plan import HOW_NOTES, shown_value

GROUPS: tuple[tuple[DriftKind, str, str], ...] = (
    (
        DriftKind.DRIFT,
        "Drift: the runtime changed outside ivmctl (`ivmctl apply` puts it back):",
        "red",
    ),
    (
        DriftKind.CONFIG,
        "Configuration changes not applied yet (`ivmctl plan` shows how):",
        "yellow",
    ),
    (
        DriftKind.IGNORED,
        "Ignored differences (lifecycle.ignore_changes; reported, never corrected):",
        "dim",
    ),
)

# a drift report lists ignored differences in a section of their own, so its note is short
HOW: dict[ChangeHow, str] = {**HOW_NOTES, ChangeHow.IGNORED: "ignored"}


def _item_line(item: DriftItem) -> str:
    if not item.path:
        return f"  {item.address}: {item.note}"
    how = (
        f"  ({HOW[item.how]})"
        if item.how is not None and item.kind is not DriftKind.IGNORED
        else ""
    )
    return (
        f"  {item.address}: {item.path}: runtime has {shown_value(item.actual)}, "
        f"declared {shown_value(item.declared)}{how}"
    )


def format_drift(report: DriftReport) -> list[tuple[str, str]]:
    """The report as (text, style) lines, the summary last."""
    lines: list[tuple[str, str]] = []
    for kind, title, style in GROUPS:
        items = report.of_kind(kind)
        if not items:
            continue
        lines.append((title, f"bold {style}"))
        lines += [(_item_line(i), style) for i in items]
        lines.append(("", ""))
    if report.unmanaged:
        lines.append((f"Unmanaged, left alone: {', '.join(report.unmanaged)}", "dim"))
    lines += [(f"warning: {w}", "yellow") for w in report.warnings]
    lines.append((report.summary(), "bold"))
    return lines


def drift_text(report: DriftReport) -> str:
    return "\n".join(text for text, _ in format_drift(report)) + "\n"


def print_drift(report: DriftReport, *, console: Console | None = None) -> None:
    """Print the report, in colour on a terminal."""
    console = console or Console(highlight=False)
    for text, style in format_drift(report):
        console.print(Text(text, style=style or ""), soft_wrap=True)
