"""The example policy plugin, installed as a distribution and exercised end to end.

Most tests install it as a temporary distribution (a dist-info with its entry point, on
sys.path), which keeps the shared virtual environment untouched; one test builds and
installs it for real with pip into a temporary target directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivmctl import model
from ivmctl.cli import cli
from ivmctl.model import DesiredState
from ivmctl.plan.model import Action, Change, Operation, OpKind, Plan
from ivmctl.providers import manager

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugins" / "ivmctl-policy-example"
MODULE = "ivmctl_policy_example"
PLUGIN = "policy-example"


def install_as_dist_info(site: Path) -> None:
    """What `pip install` leaves behind that ivmctl looks at: module, metadata, entry point."""
    site.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE / f"{MODULE}.py", site / f"{MODULE}.py")
    info = site / "ivmctl_policy_example-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ivmctl-policy-example\nVersion: 0.1.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(f"[ivmctl]\n{PLUGIN} = {MODULE}\n", encoding="utf-8")


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    site = tmp_path / "site"
    install_as_dist_info(site)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("IVMCTL_POLICY_CEILINGS", raising=False)
    monkeypatch.delenv("IVMCTL_POLICY_MAX_RESTARTS", raising=False)
    sys.modules.pop(MODULE, None)
    yield site
    sys.modules.pop(MODULE, None)


def guest(name: str, label: str, ent_min: float, ent_max: float = 100.0) -> model.Guest:
    return model.Guest(name=name, host="vmhost01", label=label,
                       entitlement=model.Entitlement(min_pct=ent_min, max_pct=ent_max))  # fmt: skip


def desired(*guests: model.Guest) -> DesiredState:
    return DesiredState(guests={g.name: g for g in guests})


def restart(name: str) -> Change:
    return Change(address=f"guest.{name}", action=Action.RESTART, host="vmhost01")


def offline_move(name: str) -> Change:
    ops = (
        Operation(kind=OpKind.GUEST_STOP, host="vmhost01", params={"name": name, "graceful": True}),
        Operation(kind=OpKind.GUEST_MIGRATE, host="vmhost01",
                  params={"name": name, "target": "vmhost02", "online": False}),
        Operation(kind=OpKind.GUEST_START, host="vmhost02", params={"name": name}),
    )  # fmt: skip
    return Change(address=f"guest.{name}", action=Action.MIGRATE, host="vmhost02", operations=ops)


def test_the_installed_plugin_is_found_with_its_distribution(installed: Path) -> None:
    pm = manager.get_plugin_manager()
    origins = {o.name: o for o in manager.plugin_origins(pm)}
    assert origins[PLUGIN].origin == "ivmctl-policy-example 0.1.0"
    assert origins[PLUGIN].hooks == ("check_plan", "validate_desired")
    assert origins[PLUGIN].path == str(installed / f"{MODULE}.py")


def test_it_is_not_loaded_without_entry_points(installed: Path) -> None:
    pm = manager.get_plugin_manager(load_entrypoints=False)
    assert PLUGIN not in {o.name for o in manager.plugin_origins(pm)}


def test_a_dev_guest_above_its_ceiling_is_refused_naming_the_plugin(installed: Path) -> None:
    pm = manager.get_plugin_manager()
    state = desired(guest("dev1", "dev sandbox", 80), guest("web01", "web front end", 90),
                    guest("dev2", "dev small", 50))  # fmt: skip
    problems = manager.validate_desired(pm, state)
    assert [p.address for p in problems] == ["guest.dev1"]
    assert problems[0].plugin == PLUGIN
    assert problems[0].message.startswith("ivmctl-policy-example: label 'dev sandbox'")
    assert "ceiling is 50%; the guest asks for 80%" in problems[0].message


def test_ceilings_come_from_the_environment(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IVMCTL_POLICY_CEILINGS", "web*=60")
    pm = manager.get_plugin_manager()
    state = desired(guest("dev1", "dev sandbox", 80), guest("web01", "Web front end", 70))
    assert [p.address for p in manager.validate_desired(pm, state)] == ["guest.web01"]


def test_a_plan_with_too_many_restarts_is_blocked_with_a_clear_message(
    installed: Path,
) -> None:
    pm = manager.get_plugin_manager()
    plan = Plan(changes=(restart("a"), restart("b"), offline_move("c")))
    problems = manager.check_plan(pm, plan, desired())
    error = manager.policy_error(problems, what="the plan")
    assert error.summary == "the plan is blocked by plugin policy-example: 1 policy problem"
    assert "ivmctl-policy-example: the plan restarts 3 guests (guest.a, guest.b, guest.c)" in str(
        error
    )
    assert "more than the 2 allowed per plan" in str(error)


def test_a_plan_within_the_restart_budget_passes(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pm = manager.get_plugin_manager()
    assert manager.check_plan(pm, Plan(changes=(restart("a"), restart("b"))), desired()) == ()
    monkeypatch.setenv("IVMCTL_POLICY_MAX_RESTARTS", "0")
    assert len(manager.check_plan(pm, Plan(changes=(restart("a"),)), desired())) == 1


def test_ivmctl_providers_lists_the_plugin_and_its_origin(installed: Path) -> None:
    result = CliRunner().invoke(cli, ["providers"])
    assert result.exit_code == 0, result.output
    assert "policy-example  ivmctl-policy-example 0.1.0" in result.output
    assert "hooks: check_plan, validate_desired" in result.output


def test_pip_installs_the_example_and_ivmctl_finds_it(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = tmp_path / "site"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
         str(target), str(source)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if pip.returncode != 0:
        pytest.skip(f"pip cannot build the example here (offline?): {pip.stderr[-300:]}")
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("IVMCTL_POLICY_MAX_RESTARTS", None)
    listing = subprocess.run(
        [sys.executable, "-m", "ivmctl", "providers", "--json"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    assert '"origin": "ivmctl-policy-example 0.1.0"' in listing.stdout
    probe = (
        "from ivmctl.providers import manager\n"
        "from ivmctl.model import DesiredState\n"
        "from ivmctl.plan.model import Action, Change, Plan\n"
        "plan = Plan(changes=tuple(Change(address=f'guest.g{i}', action=Action.RESTART,"
        " host='h') for i in range(3)))\n"
        "pm = manager.get_plugin_manager()\n"
        "problems = manager.check_plan(pm, plan, DesiredState())\n"
        "raise manager.policy_error(problems, what='the plan')\n"
    )
    blocked = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                             env=env, timeout=120, check=False)  # fmt: skip
    assert "PluginError: the plan is blocked by plugin policy-example" in blocked.stderr
    assert "ivmctl-policy-example: the plan restarts 3 guests" in blocked.stderr


def test_a_misspelt_hook_in_an_installed_plugin_stops_ivmctl_at_start_up(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "typo_plugin.py").write_text(
        "from ivmctl.providers import hookimpl\n\n"
        "@hookimpl\n"
        "def check_plans(plan):\n"
        "    return []\n",
        encoding="utf-8",
    )
    info = site / "typo_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: typo-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[ivmctl]\ntypo = typo_plugin\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-m", "ivmctl", "providers"], capture_output=True,
                            text=True, env=env, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "plugin 'typo' (typo-plugin 1.0) implements unknown hook 'check_plans'" in result.stderr
    assert "Did you mean 'check_plan'?" in result.stderr


CONFIG = """\
apiVersion: ivmctl/v1
provider:
  name: emulator
  options: {path: world.db}
hosts:
  vmhost01:
    version: "6.3"
    hardware: {cores: 8, memory: 64G, nics: [lan0]}
guests:
  a: {host: vmhost01, vcpus: 1, power: on, label: web a}
  b: {host: vmhost01, vcpus: 1, power: on, label: web b}
"""


def ivmctl(
    config_dir: Path, site: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("IVMCTL_")}
    environ.update(PYTHONPATH=str(site), **env)
    return subprocess.run([sys.executable, "-m", "ivmctl", "-C", str(config_dir), *args],
                          capture_output=True, text=True, env=environ, timeout=300,
                          check=False)  # fmt: skip


def test_ivmctl_plan_is_blocked_by_the_installed_policy_naming_it(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_as_dist_info(site)
    config = tmp_path / "config"
    config.mkdir()
    (config / "ivmctl.yaml").write_text(CONFIG, encoding="utf-8")
    applied = ivmctl(config, site, "apply", "--auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr

    (config / "ivmctl.yaml").write_text(CONFIG.replace("vcpus: 1", "vcpus: 2"), encoding="utf-8")
    blocked = ivmctl(config, site, "plan", IVMCTL_POLICY_MAX_RESTARTS="1")
    assert blocked.returncode == 1
    assert "the plan is blocked by plugin policy-example" in blocked.stderr
    assert "ivmctl-policy-example: the plan restarts 2 guests (guest.a, guest.b)" in blocked.stderr
    assert ivmctl(config, site, "plan", IVMCTL_POLICY_MAX_RESTARTS="2").returncode in (0, 2)

    (config / "ivmctl.yaml").write_text(
        CONFIG.replace("label: web b}", "label: dev b, entitlement: 80%}"), encoding="utf-8"
    )
    refused = ivmctl(config, site, "plan")
    assert refused.returncode == 1
    assert "the configuration is blocked by plugin policy-example" in refused.stderr
    assert "guest.b: ivmctl-policy-example: label 'dev b' matches 'dev*'" in refused.stderr
