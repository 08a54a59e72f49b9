"""A host that does not answer: the plan names it, and --target plans the rest without it.

Real CLI, real emulator; the host is made unreachable with `ivmctl emulator faults`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ivmctl.runtime import World

FLEET = """\
apiVersion: ivmctl/v1
provider: {name: emulator, options: {path: .ivmctl/emulator.db}}
hosts:
  hosta:
    version: "6.3"
    hardware: {cores: 4, memory: 16G, nics: [lan0]}
    vswitches: {vsw1: {nic: lan0}}
  hostb:
    version: "6.3"
    hardware: {cores: 4, memory: 16G, nics: [lan0]}
    vswitches: {vsw1: {nic: lan0}}
guests:
  a1: {host: hosta, memory: 2G, nics: [{vswitch: vsw1}]}
  b1: {host: hostb, memory: 2G, nics: [{vswitch: vsw1}]}
"""


@pytest.fixture
def applied(tmp_path: Path, run: Any) -> Path:
    config = tmp_path / "config"
    config.mkdir()
    (config / "fleet.yaml").write_text(FLEET, encoding="utf-8")
    run("apply", "--auto-approve")
    return config


def _change(config: Path, *, a1_label: str, b1_label: str, drop_a1: bool = False) -> None:
    text = FLEET.replace(
        "a1: {host: hosta, memory: 2G,", f"a1: {{host: hosta, memory: 2G, label: {a1_label},"
    ).replace("b1: {host: hostb, memory: 2G,", f"b1: {{host: hostb, memory: 2G, label: {b1_label},")
    if drop_a1:
        text = "\n".join(line for line in text.splitlines() if "a1:" not in line) + "\n"
    (config / "fleet.yaml").write_text(text, encoding="utf-8")


def _labels(config: Path) -> dict[str, str]:
    with World.open(config / ".ivmctl" / "emulator.db", create=False) as world:
        lines = [world.execute(h, ["hpvmstatus", "-M"]).stdout for h in ("hosta", "hostb")]
    fields = [line.split(":") for text in lines for line in text.splitlines()]
    return {f[0]: f[7] for f in fields}


def test_a_plan_names_the_host_that_does_not_answer(applied: Path, run: Any) -> None:
    _change(applied, a1_label="x", b1_label="y")
    run("emulator", "faults", "hosta", "--unreachable")
    refused = run("plan", check=1)
    assert "cannot read host hosta: it does not answer" in refused.stderr
    assert "Connection refused" in refused.stderr and "--target" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_targeted_plan_and_apply_leave_the_unreachable_host_alone(
    applied: Path, run: Any
) -> None:
    # a1 is dropped from the configuration: without its host's answer, ivmctl must neither
    # delete it nor forget that it owns it
    _change(applied, a1_label="x", b1_label="tuned", drop_a1=True)
    run("emulator", "faults", "hosta", "--unreachable")
    planned = run("plan", "--target", "guest.b1")
    assert "hosta could not be reached: the plan leaves it and everything on it alone" in (
        planned.stdout + planned.stderr
    )
    assert "guest.b1" in planned.stdout and "guest.a1" not in planned.stdout
    run("apply", "--auto-approve", "--target", "host.hostb")
    run("emulator", "faults", "hosta", "--reachable")
    assert _labels(applied) == {"a1": "", "b1": "tuned"}
    state = (applied / ".ivmctl" / "state.json").read_text(encoding="utf-8")
    assert "guest.a1" in state  # still owned: the full plan now offers to delete it
    full = run("plan")
    assert "guest.a1" in full.stdout and "destroy" in full.stdout


def test_a_target_on_the_unreachable_host_is_refused(applied: Path, run: Any) -> None:
    _change(applied, a1_label="x", b1_label="y")
    run("emulator", "faults", "hosta", "--unreachable")
    for target in ("guest.a1", "host.hosta", "vswitch.hosta.vsw1"):
        refused = run("plan", "--target", target, check=1)
        assert f"target {target} is on a host that cannot be reached" in refused.stderr
