"""What people read: the plan text, apply progress lines and the apply summary."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console
from rich.text import Text

from ivmctl.core.apply import ApplyEvent, ApplyResult, EventKind
from ivmctl.plan.model import (
    Action,
    Change,
    ChangeHow,
    FieldChange,
    Operation,
    OpKind,
    Plan,
)
from ivmctl.render import plan as render_plan
from ivmctl.render.plan import format_plan, plan_text, print_plan
from ivmctl.render.progress import JsonProgress, PlainProgress, summary_line


def _plan() -> Plan:
    return Plan(
        changes=(
            Change(address="guest.web01", action=Action.CREATE, host="vmhost01",
                   after={"name": "web01", "host": "vmhost01", "vcpus": 2, "label": "",
                          "memory_mb": 4096, "entitlement": {"min_pct": 20.0, "max_pct": 100.0},
                          "nics": [{"vswitch": "vswprod", "adapter": "avio_lan", "vlan": 100,
                                    "mac": None}]}),
            Change(address="guest.db01", action=Action.RESTART, host="vmhost01",
                   before={"vcpus": 2, "memory_mb": 4096}, after={"vcpus": 4, "memory_mb": 4096},
                   fields=(FieldChange(path="vcpus", before=2, after=4, how=ChangeHow.NEEDS_OFF),),
                   reasons=("vCPUs cannot change while the guest runs",)),
            Change(address="guest.app01", action=Action.MIGRATE, host="vmhost02",
                   before={"host": "vmhost01"}, after={"host": "vmhost02"},
                   operations=(Operation(kind=OpKind.GUEST_MIGRATE, host="vmhost01",
                                         params={"name": "app01", "target": "vmhost02",
                                                 "online": True}),)),
            Change(address="guest.idle", action=Action.NOOP, host="vmhost01",
                   reasons=("matches the configuration",)),
        )
    )  # fmt: skip


def test_the_plan_is_grouped_by_host_and_ends_with_the_summary() -> None:
    text = plan_text(_plan())
    assert text.index("host vmhost01") < text.index("guest.web01") < text.index("host vmhost02")
    assert "+ guest.web01 will be created" in text
    assert "    2 vCPU, entitlement 20%..100%, memory 4 GB" in text
    assert "    nic   vswprod  (avio_lan, vlan 100, mac auto)" in text
    assert "guest.db01 will RESTART (stop, modify, start)" in text
    assert "vcpus: 2 -> 4  (needs the guest Off)" in text
    assert "# vCPUs cannot change while the guest runs" in text
    assert "guest.app01 will MIGRATE from vmhost01 to vmhost02 (online)" in text
    assert "guest.idle" not in text
    assert (
        "Plan: 1 to add, 0 to change, 1 to restart, 1 to migrate, 0 to destroy.\n"
        "3 changes in 1 round of the change graph; up to 3 can run at once"
    ) in text


def test_an_empty_plan_says_so_plainly() -> None:
    assert plan_text(Plan()).strip() == "No changes. The runtime matches the configuration."


def test_no_op_changes_explain_themselves_when_shown() -> None:
    assert "# matches the configuration" in plan_text(_plan(), show_noop=True)


def _awkward_plan() -> Plan:
    """Many lines on several hosts, with text rich treats specially."""
    reasons = (
        "a\ttab and [bold]markup[/bold] that is not markup",
        "a bell\x07, a carriage return\r and :smile: kept as written",
        "wide 漢字 characters, and a second line\nafter a newline",
    )
    changes = [
        Change(
            address=f"guest.g{i}",
            action=(Action.UPDATE, Action.RESTART, Action.DELETE)[i % 3],
            host=f"vmhost{i % 4}",
            before={"label": "x"},
            after=None if i % 3 == 2 else {"label": "y"},
            fields=()
            if i % 3 == 2
            else (FieldChange(path="label", before="x", after="y", how=ChangeHow.ONLINE),),
            reasons=reasons,
            operations=(Operation(kind=OpKind.GUEST_DELETE, host=f"vmhost{i % 4}",
                                  params={"name": f"g{i}"}),),
        )
        for i in range(12)
    ]  # fmt: skip
    return Plan(changes=tuple(changes), warnings=("one\ttab",), unmanaged=("guest.other",))


@pytest.mark.parametrize(
    "options",
    [{}, {"force_terminal": True, "color_system": "truecolor", "width": 30}],
    ids=["plain", "colour"],
)
def test_a_plan_prints_the_bytes_of_printing_each_line_as_rich_text(
    options: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = _awkward_plan()
    expected = io.StringIO()
    console = Console(file=expected, highlight=False, **options)  # type: ignore[arg-type]
    for text, style in format_plan(plan):
        console.print(Text(text, style=style), soft_wrap=True)
    monkeypatch.setattr(render_plan, "PRINT_CHUNK_LINES", 7)  # several prints, split anywhere
    got = io.StringIO()
    print_plan(plan, console=Console(file=got, highlight=False, **options))  # type: ignore[arg-type]
    assert got.getvalue() == expected.getvalue()
    assert "\x1b[" in got.getvalue() if options else "\x1b[" not in got.getvalue()


def test_plain_progress_prints_one_line_per_event() -> None:
    out = io.StringIO()
    progress = PlainProgress(out, total=1)
    progress(ApplyEvent(kind=EventKind.STEP_STARTED, address="guest.a", message="hpvmstart -P a"))
    progress(ApplyEvent(kind=EventKind.CHANGE_DONE, address="guest.a"))
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("guest.a: running: hpvmstart -P a")
    assert lines[1].endswith("guest.a: done (1/1)")


def test_json_progress_prints_one_object_per_event() -> None:
    out = io.StringIO()
    JsonProgress(out, total=1)(ApplyEvent(kind=EventKind.CHANGE_FAILED, address="guest.a",
                                          message="boom"))  # fmt: skip
    event = json.loads(out.getvalue())
    assert event == {"type": "apply_event", "kind": "change_failed", "address": "guest.a",
                     "message": "boom", "elapsed": 0.0}  # fmt: skip


def test_the_summary_line_tells_how_to_converge_after_a_failure() -> None:
    result = ApplyResult(done=("guest.a",), failed={"guest.b": "x"}, skipped=("guest.c",))
    assert summary_line(result) == (
        "Apply incomplete: 1 done, 1 failed, 1 skipped. "
        "Run `ivmctl plan` to see what remains; applying again converges."
    )
    assert summary_line(ApplyResult(done=("guest.a",))) == (
        "Apply complete: 1 done, 0 failed, 0 skipped."
    )
