"""Apply progress with thousands of changes: every finished change shown once, in order.

The displays live in ivmctl/render/progress.py; these tests feed them the event stream
of a large apply (the walk's own tests are in test_apply_walk.py).
"""

from __future__ import annotations

import io
import json
import re

from rich.console import Console

from ivmctl.core.apply import ApplyEvent, EventKind
from ivmctl.render.progress import JsonProgress, LiveProgress, PlainProgress

COUNT = 3000


def events() -> list[ApplyEvent]:
    stream = []
    for i in range(COUNT):
        address = f"guest.g{i:05d}"
        stream += [
            ApplyEvent(kind=EventKind.CHANGE_STARTED, address=address),
            ApplyEvent(kind=EventKind.STEP_STARTED, address=address, message=f"create {i}"),
            ApplyEvent(kind=EventKind.STEP_FINISHED, address=address, message=f"create {i}"),
            ApplyEvent(kind=EventKind.CHANGE_DONE, address=address),
        ]
    return stream


def test_the_live_view_prints_every_finished_change_once_in_order() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    with LiveProgress(console, total=COUNT) as progress:
        for event in events():
            progress(event)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # cursor movements
    done = re.findall(r"(guest\.g\d+): done", text)
    assert done == [f"guest.g{i:05d}" for i in range(COUNT)]


def test_plain_and_json_progress_write_one_line_per_event() -> None:
    plain, machine = io.StringIO(), io.StringIO()
    with PlainProgress(plain, total=COUNT) as p, JsonProgress(machine, total=COUNT) as j:
        for event in events():
            p(event)
            j(event)
    assert len(plain.getvalue().splitlines()) == 4 * COUNT
    assert plain.getvalue().splitlines()[-1].endswith(f"done ({COUNT}/{COUNT})")
    last = json.loads(machine.getvalue().splitlines()[-1])
    assert last == {"address": f"guest.g{COUNT - 1:05d}", "elapsed": 0.0,
                    "kind": "change_done", "message": "", "type": "apply_event"}  # fmt: skip
