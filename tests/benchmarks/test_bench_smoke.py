"""The benchmark code paths, at a tiny size, so `make bench` cannot rot between runs.

These tests check behaviour and the shape of the output (every benchmark ran, every
plan planned what it should, the JSON file is versioned), never a time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _benchmarks_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))


def test_plain_and_templated_fleets_load_to_the_same_desired_state(tmp_path: Path) -> None:
    from benchmarks.fleet import write_fleet
    from ivmctl.spec import SpecOptions, load_spec

    plain = write_fleet(tmp_path / "plain", hosts=3, guests=25)
    jinja = write_fleet(tmp_path / "jinja", hosts=3, guests=25, templated=True)
    a = load_spec(plain.directory, SpecOptions(environ={}))
    b = load_spec(jinja.directory, SpecOptions(environ={}))
    assert len(a.desired.hosts) == 3 and len(a.desired.guests) == 25
    assert a.desired.digest == b.desired.digest
    assert not a.warnings and not b.warnings
    devices = [len(g.disks) + len(g.nics) for g in a.desired.guests.values()]
    assert min(devices) == 2 and max(devices) == 4


def test_drift_spreads_the_chosen_fraction_over_the_fleet(tmp_path: Path) -> None:
    from benchmarks.fleet import drifted_guests, write_fleet

    fleet = write_fleet(tmp_path, hosts=10, guests=1000)
    assert drifted_guests(fleet, 0.01) == list(range(0, 1000, 100))
    assert len(drifted_guests(fleet, 0.0001)) == 1  # at least one when asked for drift
    assert drifted_guests(fleet, 0.0) == []


def test_quick_run_measures_every_benchmark_and_writes_versioned_json(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--sizes", "10", "--profile", "5",
         "--repeat", "2", "--only", "startup", "--only", "scale", "--only", "apply_parallel",
         "--only", "floors", "--only", "cpus", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads(out.read_text())
    assert document["format_version"] == 1
    assert document["machine"]["cpus"] >= 1
    tables: dict[str, dict[str, Any]] = {t["name"]: t for t in document["tables"]}
    assert set(tables) >= {"startup", "scale", "scaling", "paired", "apply_parallel", "floors",
                           "profile plan no-op (warm)", "profile validate (cold)",
                           "cpus"}  # fmt: skip
    # the machine's CPUs, as the run started and as it ended
    assert [row["when"] for row in tables["cpus"]["rows"]] == ["start", "end"]
    for row in tables["cpus"]["rows"]:
        both = row["two at once runs s"]
        assert row["alone s"] > 0 and len(both) == 2 and min(both) > 0
        assert row["slower / alone"] == max(both) / row["alone s"]

    scale = {row["command"]: row for row in tables["scale"]["rows"]}
    for command in ("validate (cold)", "validate (warm)", "validate Jinja (cold)",
                    "plan create-all", "apply create-all", "plan no-op (cold)",
                    "plan no-op (warm)", "plan no-op (cold, settled)", "plan 1% drift",
                    "floor libyaml"):  # fmt: skip
        assert scale[command]["wall s"] > 0
        assert scale[command]["peak MiB"] > 0
        if not command.startswith("floor"):  # each command twice; the row, one of them
            assert len(scale[command]["runs s"]) == 2
            assert scale[command]["wall s"] in scale[command]["runs s"]
    assert scale["plan no-op (warm)"]["detail"].startswith("No changes")
    assert scale["plan no-op (cold, settled)"]["detail"].startswith("No changes")
    # the settled cold plan, each run paired with a floor parsed just before it
    settled = scale["plan no-op (cold, settled)"]
    assert len(settled["paired floors s"]) == 2 and min(settled["paired floors s"]) > 0
    (pair,) = tables["paired"]["rows"]
    ratios = [p / f for p, f in zip(settled["runs s"], settled["paired floors s"], strict=True)]
    assert pair["x libyaml (median)"] == pytest.approx(sum(ratios) / 2)
    assert "1 to change" in scale["plan 1% drift"]["detail"]
    assert scale["floor rust"]["detail"]  # a parser's name, or "not installed"

    parallel = tables["apply_parallel"]["rows"]
    assert [row["parallelism"] for row in parallel] == [1, 4]
    assert all(row["ratio"] > 0 and row["ideal s"] > 0 for row in parallel)
    assert any("critical path" in note for note in tables["apply_parallel"]["notes"])

    profile = tables["profile plan no-op (warm)"]["rows"]
    assert 0 < len(profile) <= 5 and all(row["cumulative s"] >= 0 for row in profile)
    for name in ("Fleet scale", "Scaling", "Parallel apply", "Start-up", "Where the time goes"):
        assert name in done.stdout

    from benchmarks.report import render

    markdown = render(document)
    assert "### Parallel apply" in markdown and "| parallelism |" in markdown


def test_complete_brings_a_fleet_to_its_applied_state(tmp_path: Path) -> None:
    from benchmarks.common import ivmctl
    from benchmarks.fleet import complete, write_fleet

    fleet = write_fleet(tmp_path, hosts=2, guests=6)
    assert complete(fleet) == 6 + 2 * 4  # guests, hosts provisioned, 3 vswitches each
    assert ivmctl(fleet.directory, "plan", "--detailed-exitcode").returncode == 0


def test_a_command_over_its_budget_is_interrupted_and_measured() -> None:
    from benchmarks.common import measure

    out = measure([sys.executable, "-c", "import time; time.sleep(60)"], budget=0.5)
    assert out.interrupted and not out.killed and out.returncode != 0
    assert out.seconds < 30


def test_a_command_that_ignores_its_ctrl_c_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import common

    monkeypatch.setattr(common, "GRACE", 0.5)
    ignore = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(60)"
    out = common.measure([sys.executable, "-c", ignore], budget=0.5)
    assert out.interrupted and out.killed and out.seconds < 30


def test_measured_runs_use_bytecode_and_no_ivmctl_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from benchmarks.common import clean_env

    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("IVMCTL_EMULATOR_LATENCY", "1")
    env = clean_env(EXTRA="x")
    assert "PYTHONDONTWRITEBYTECODE" not in env and "IVMCTL_EMULATOR_LATENCY" not in env
    assert env["EXTRA"] == "x"


def test_the_report_renders_a_results_file_and_refuses_a_missing_one(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    document = {"format_version": 1, "started": "then", "machine": {"cpus": 2}, "tables": [
        {"name": "t", "title": "A table", "columns": ["a"], "rows": [{"a": 1}], "notes": []}
    ]}  # fmt: skip
    out.write_text(json.dumps(document))
    run = [sys.executable, "-m", "benchmarks.report"]
    done = subprocess.run([*run, str(out)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "### A table" in done.stdout
    missing = subprocess.run(
        [*run, str(tmp_path / "none.json")], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert missing.returncode == 1
    assert missing.stderr.startswith(f"cannot read {tmp_path / 'none.json'}")
    assert "Traceback" not in missing.stderr
