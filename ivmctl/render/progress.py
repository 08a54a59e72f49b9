"""Apply progress: a live view on a terminal, one line per event elsewhere (CI logs).

On a terminal: an overall bar and one line per running change (address, current
step, elapsed); finished changes scroll above it. Elsewhere: a plain, greppable line
per event. Both end with the same summary table. An apply of 10,000 guests has over
100,000 events, so no display does more than format and write a line per event.
"""

from __future__ import annotations

import json
import threading
import time
from types import TracebackType
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ivmctl.core.apply import ApplyEvent, ApplyResult, EventKind

_FINAL = {EventKind.CHANGE_DONE, EventKind.CHANGE_FAILED, EventKind.CHANGE_SKIPPED}


class PlainProgress:
    """Line-per-event progress for logs: `[   1.2s] guest.web01: started hpvmstart -P web01`."""

    def __init__(self, stream: TextIO, *, total: int) -> None:
        self._stream = stream
        self._total = total
        self._finished = 0
        self._start = time.monotonic()
        self._lock = threading.Lock()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __call__(self, event: ApplyEvent) -> None:
        with self._lock:
            if event.kind in _FINAL:
                self._finished += 1
            stamp = f"[{time.monotonic() - self._start:7.1f}s]"
            kind = event.kind
            if kind is EventKind.CHANGE_DONE:
                text = f"done ({self._finished}/{self._total})"
            else:
                text = _PLAIN[kind].format(event.message)
            self._stream.write(f"{stamp} {event.address}: {text}\n")
            self._stream.flush()


_PLAIN = {
    EventKind.CHANGE_STARTED: "started",
    EventKind.STEP_STARTED: "running: {}",
    EventKind.STEP_FINISHED: "finished: {}",
    EventKind.CHANGE_FAILED: "FAILED: {}",
    EventKind.CHANGE_SKIPPED: "{}",
    EventKind.INCONSISTENT: "PROVIDER INCONSISTENCY: {}",
}


class JsonProgress(PlainProgress):
    """One JSON object per event, for machines."""

    def __call__(self, event: ApplyEvent) -> None:
        body = {
            "address": event.address,
            "elapsed": event.elapsed,
            "kind": event.kind.value,
            "message": event.message,
            "type": "apply_event",
        }
        line = json.dumps(body, sort_keys=True) + "\n"
        with self._lock:
            self._stream.write(line)
            self._stream.flush()


class LiveProgress:
    """The terminal view: a bar for the whole apply and a line per running change.

    Events only update counters and lists, so each costs microseconds however many
    there are: the view is drawn by rich's refresh thread (8 times a second), and the
    lines of finished changes are printed above it in batches, at most 10 times a second.
    """

    FLUSH_INTERVAL = 0.1  # seconds between prints of finished lines

    def __init__(self, console: Console, *, total: int) -> None:
        self._console = console
        self._bar = Progress(
            TextColumn("Applying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self._task = self._bar.add_task("apply", total=total)
        self._running: dict[str, tuple[str, float]] = {}
        self._lines: list[Text] = []  # finished changes not printed yet
        self._lock = threading.Lock()
        # The view is drawn from `__rich__` each time rich draws it (its refresh thread,
        # and around every print), so it is never a stale copy.
        self._live = Live(self, console=console, refresh_per_second=8, transient=True)
        self._stop = threading.Event()
        self._printer = threading.Thread(target=self._print_batches, name="progress", daemon=True)

    def __rich__(self) -> Group:
        with self._lock:
            rows = sorted(self._running.items())
        table = Table.grid(padding=(0, 2))
        now = time.monotonic()
        for address, (step, since) in rows:
            table.add_row(Text(address, style="bold"), Text(step), Text(f"{now - since:5.1f}s"))
        return Group(self._bar, table)

    def __enter__(self) -> LiveProgress:
        self._live.__enter__()
        self._printer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._printer.join()
        self._print_lines()
        self._live.__exit__(exc_type, exc, tb)

    def _print_batches(self) -> None:
        while not self._stop.wait(self.FLUSH_INTERVAL):
            self._print_lines()

    def _print_lines(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
        if lines:
            self._console.print(Text("\n").join(lines))

    def __call__(self, event: ApplyEvent) -> None:
        with self._lock:
            if event.kind is EventKind.CHANGE_STARTED:
                self._running[event.address] = ("starting", time.monotonic())
            elif event.kind is EventKind.STEP_STARTED:
                since = self._running.get(event.address, ("", time.monotonic()))[1]
                self._running[event.address] = (event.message, since)
            elif event.kind in _FINAL:
                self._running.pop(event.address, None)
                style, word = {
                    EventKind.CHANGE_DONE: ("green", "done"),
                    EventKind.CHANGE_FAILED: ("red", "FAILED"),
                    EventKind.CHANGE_SKIPPED: ("yellow", "skipped"),
                }[event.kind]
                line = Text(f"{event.address}: {word}", style=style)
                if event.message:
                    line.append(f" — {event.message}")
                self._lines.append(line)
            elif event.kind is EventKind.INCONSISTENT:
                self._lines.append(
                    Text(f"{event.address}: provider inconsistency: {event.message}", style="red")
                )
        if event.kind in _FINAL:
            self._bar.advance(self._task)


def summary_table(result: ApplyResult) -> Table:
    """The closing table: what was done, what failed (root cause once), what was skipped."""
    table = Table(title="Apply summary", show_lines=False)
    table.add_column("change")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for key in result.done:
        detail = "; ".join(result.inconsistent.get(key, ()))
        table.add_row(key, "inconsistent" if detail else "done", detail)
    for key, cause in result.failed.items():
        table.add_row(key, "[red]failed[/red]", cause)
    for key in result.skipped:
        table.add_row(key, "[yellow]skipped[/yellow]", "a change it depends on did not complete")
    return table


def summary_line(result: ApplyResult) -> str:
    """One sentence for the end of any apply."""
    text = (
        f"Apply {'complete' if result.ok else 'incomplete'}: {len(result.done)} done, "
        f"{len(result.failed)} failed, {len(result.skipped)} skipped."
    )
    if result.interrupted:
        text += " Interrupted: running changes finished, nothing new was started."
    if not result.ok:
        text += " Run `ivmctl plan` to see what remains; applying again converges."
    return text


def progress_for(*, as_json: bool, total: int, stream: TextIO) -> Any:
    """The progress display that suits the output: JSON lines, a live view, or log lines."""
    if as_json:
        return JsonProgress(stream, total=total)
    console = Console(highlight=False, file=stream)
    if console.is_terminal:
        return LiveProgress(console, total=total)
    return PlainProgress(stream, total=total)


def print_summary(result: ApplyResult, *, stream: TextIO, errors: TextIO) -> None:
    """The closing table on a terminal, root causes (once each, on `errors`), the summary."""
    console = Console(highlight=False, file=stream, soft_wrap=True)
    if console.is_terminal:
        console.print(summary_table(result))
    error_console = Console(highlight=False, file=errors, soft_wrap=True)
    for key, cause in result.failed.items():
        error_console.print(Text(f"error: {key}: {cause}", style="red"))
    console.print(summary_line(result), markup=False)
