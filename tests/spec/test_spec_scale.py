"""The scale benchmark's generator produces a valid configuration (checked small here;
benchmarks/validate_scale.py measures it at 10,000 guests)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ivmctl.spec import InvalidConfig, SpecOptions, load_spec

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "validate_scale.py"


def _generator():
    spec = importlib.util.spec_from_file_location("validate_scale", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate


def test_generated_scale_configuration_is_valid(tmp_path: Path) -> None:
    _generator()(tmp_path, 10, 250)
    result = load_spec(tmp_path, SpecOptions(environ={}))
    assert (len(result.desired.hosts), len(result.desired.guests)) == (10, 250)


def test_every_problem_of_a_large_configuration_is_located(tmp_path: Path) -> None:
    _generator()(tmp_path, 10, 2000)
    for path in tmp_path.glob("guests-*.yaml"):
        path.write_text(path.read_text().replace("vswitch: vswbackup", "vswitch: vswbakup"))
    try:
        load_spec(tmp_path, SpecOptions(environ={}))
    except InvalidConfig as invalid:
        errors = invalid.errors
    assert len(errors) == 2000
    assert all(e.location and e.location.line for e in errors)
    first = str(errors[0].location)
    assert first == f"{tmp_path}/guests-00.yaml:11:19: guest.g00000: nics[1].vswitch"
