"""What `ivmctl plan` and the emulator's reader processes import: not what they never use.

A warm plan with nothing to change spends a large part of its time importing, and every
reader worker imports again when it starts. These tests list modules that such runs must
not load (deepdiff, the spec pipeline, apply, xml.sax with urllib and http.client); one
top-level import added on the way brings them back and fails here. They look at
sys.modules in a fresh interpreter, never at a clock.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Loaded by xml.sax.saxutils, which runtime/formats.py no longer imports.
WEB = {"xml.sax", "xml.sax.saxutils", "urllib.request", "http.client"}
# Needed only to load a configuration anew, never on a desired-cache hit.
SPEC_PIPELINE = {"ivmctl.spec.normalize", "ivmctl.spec.checks", "ivmctl.spec.schema"}
# Needed only when a plan has a difference to describe, or is applied.
NOT_FOR_A_NOOP = {"deepdiff", "ivmctl.core.apply"}
EMULATOR_ENGINE = {"ivmctl.runtime.world", "ivmctl.runtime.commands", "ivmctl.runtime.formats"}


def _environ() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVMCTL_")}
    env.pop("FORCE_COLOR", None)
    return env


def modules_after(code: str, *, cwd: Path | None = None) -> set[str]:
    """The names in sys.modules when `code` has run (and exited 0) in a fresh interpreter."""
    dump = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print('MODULES=' + json.dumps(sorted(sys.modules))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", dump + code],
        cwd=cwd,
        env=_environ(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("MODULES=")]
    assert proc.returncode == 0 and lines, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return set(json.loads(lines[-1].removeprefix("MODULES=")))


def test_importing_the_plan_command_loads_neither_the_emulator_nor_deepdiff() -> None:
    loaded = modules_after(
        "import ivmctl.cli, ivmctl.cli.plan, ivmctl.core.session, ivmctl.spec.loader, "
        "ivmctl.render.plan, ivmctl.plan.planfile"
    )
    assert "ivmctl.core.session" in loaded
    unwanted = WEB | SPEC_PIPELINE | NOT_FOR_A_NOOP | EMULATOR_ENGINE
    assert sorted(loaded & unwanted) == []


def test_a_crash_point_does_not_load_the_emulator_engine() -> None:
    loaded = modules_after("import ivmctl.runtime.crashpoints")
    assert sorted(loaded & EMULATOR_ENGINE) == []


def test_the_runtime_package_still_offers_the_world_on_first_use() -> None:
    loaded = modules_after(
        "from ivmctl.runtime import CommandResult, FaultInfo, HostInfo, LogEntry, World\n"
        "import ivmctl.runtime.world as w\n"
        "assert World is w.World and CommandResult is w.CommandResult\n"
    )
    assert "ivmctl.runtime.world" in loaded


def test_a_reader_process_computing_listings_loads_no_web_modules() -> None:
    loaded = modules_after("import ivmctl.runtime.workers, ivmctl.runtime.commands")
    assert "ivmctl.runtime.formats" in loaded
    assert sorted(loaded & (WEB | NOT_FOR_A_NOOP | SPEC_PIPELINE)) == []


def test_a_warm_plan_with_nothing_to_change_loads_only_what_it_uses(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "examples" / "quickstart", config, ignore=shutil.ignore_patterns(".*"))
    cli = [sys.executable, "-m", "ivmctl"]
    for args in (["apply", "--auto-approve"], ["plan"]):  # the second plan is warm
        subprocess.run(
            [*cli, *args], cwd=config, env=_environ(), check=True, capture_output=True,
            timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    loaded = modules_after(
        "from ivmctl.cli import main\nmain(['plan', '--detailed-exitcode'])\n", cwd=config
    )
    assert "ivmctl.plan.planner" in loaded  # it did plan
    assert sorted(loaded & (WEB | SPEC_PIPELINE | NOT_FOR_A_NOOP)) == []
