"""Data-driven emulator cases: command line -> expected output or error.

Each tests/runtime/cases/*.yaml file holds a list of cases. A case names itself as a
sentence, sets the world up with `given` command lines (each must succeed), then runs
`steps` (or a single top-level step) and compares exit status, exact output, substrings,
or fields of an `hpvmstatus -M` line. `@host` before a command line picks the host
(default vmhost01).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from ivmctl.runtime import World

CASES_DIR = Path(__file__).parent / "cases"
STEP_KEYS = {
    "run",
    "exit",
    "stdout",
    "stderr",
    "stdout_has",
    "stderr_has",
    "stdout_lacks",
    "fields",
    "advance",
    "lines",
}


def _load() -> list[Any]:
    params = []
    for file in sorted(CASES_DIR.glob("*.yaml")):
        for case in yaml.safe_load(file.read_text()):
            params.append(pytest.param(case, id=f"{file.stem}:{case['name']}"))
    return params


def _split(line: str) -> tuple[str, list[str]]:
    host = "vmhost01"
    if line.startswith("@"):
        host, _, line = line[1:].partition(" ")
    return host, shlex.split(line)


def _steps(case: dict[str, Any]) -> list[dict[str, Any]]:
    steps = list(case.get("steps", []))
    single = {k: v for k, v in case.items() if k in STEP_KEYS}
    if single:
        steps.insert(0, single)
    assert steps, f"case {case['name']} has nothing to run"
    return steps


@pytest.mark.parametrize("case", _load())
def test_emulator_case(case: dict[str, Any], tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    world = World.open(tmp_path / "w.db", create=True, clock=lambda: now[0], sleep=lambda s: None)
    try:
        hosts = case.get("hosts") or [
            {"name": "vmhost01", "cores": 8, "memory_mb": 65536, "nics": ["lan0", "lan1"]},
            {"name": "vmhost02", "cores": 8, "memory_mb": 65536, "nics": ["lan0", "lan1"]},
        ]
        for spec in hosts:
            world.add_host(**{**spec, "nics": tuple(spec.get("nics", ["lan0"]))})
        for line in case.get("given", []):
            host, argv = _split(line)
            result = world.execute(host, argv)
            assert result.exit_code == 0, f"given {line!r} failed:\n{result.stderr}"
        for host, faults in (case.get("faults") or {}).items():
            world.set_faults(host, **faults)
        for step in _steps(case):
            now[0] += float(step.get("advance", 0))
            host, argv = _split(step["run"])
            result = world.execute(host, argv)
            where = (
                f"{case['name']}: {step['run']}\nstdout:\n{result.stdout}stderr:\n{result.stderr}"
            )
            assert result.exit_code == step.get("exit", 0), where
            if "stdout" in step:
                assert result.stdout == step["stdout"], where
            if "stderr" in step:
                assert result.stderr == step["stderr"], where
            for text in step.get("stdout_has", []):
                assert text in result.stdout, f"missing {text!r} in {where}"
            for text in step.get("stdout_lacks", []):
                assert text not in result.stdout, f"unexpected {text!r} in {where}"
            for text in step.get("stderr_has", []):
                assert text in result.stderr, f"missing {text!r} in {where}"
            if "lines" in step:
                assert len(result.stdout.splitlines()) == step["lines"], where
            if "fields" in step:
                fields = result.stdout.strip().split(":")
                assert len(fields) == 21, where
                for index, value in step["fields"].items():
                    assert fields[int(index)] == str(value), f"field {index}: {where}"
    finally:
        world.close()
