"""Normalisation cases (cases/normalise.yaml): one meaning, one value, never a diff."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ivmctl.model import Guest
from ivmctl.spec import InvalidConfig, LoadResult, load_spec

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "normalise.yaml").read_text())
HOST = """apiVersion: ivmctl/v1
hosts:
  vmhost01:
    hardware: {cores: 16, memory: 256G, nics: [lan0]}
    vswitches: {vswprod: {nic: lan0}, vswlocal: {}}
guests:
  g:
"""


def load_guest(case: dict[str, Any], guest: dict[str, Any], tmp: Path) -> LoadResult:
    body = {"host": "vmhost01", **guest}
    text = HOST + "".join(f"    {line}\n" for line in _dump(body).splitlines())
    extra: dict[str, Any] = {}
    if "defaults" in case:
        extra["defaults"] = {"guests": case["defaults"]}
    if "profiles" in case:
        extra["profiles"] = case["profiles"]
    if extra:
        text += _dump(extra)
    (tmp / "config.yaml").write_text(text, encoding="utf-8")
    try:
        return load_spec(Path("."))
    except InvalidConfig as invalid:
        raise AssertionError(str(invalid) + "\n---\n" + text) from None


def _dump(data: Any) -> str:
    # a guest's fields land on line 8 as one flow mapping: {host: vmhost01, ...}
    return yaml.safe_dump(data, default_flow_style=None, sort_keys=False, width=1000)


def attribute(guest: Guest, dotted: str) -> Any:
    value: Any = guest
    for part in dotted.split("."):
        value = value[int(part)] if part.isdigit() else getattr(value, part)
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize(
    "case", [c for c in CASES if "expect" in c], ids=lambda c: c["name"].replace(" ", "_")
)
def test_guest_is_normalised_as_expected(
    case: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = load_guest(case, case["guest"], tmp_path)
    guest = result.desired.guests["g"]
    actual = {key: attribute(guest, key) for key in case["expect"]}
    assert actual == case["expect"]
    assert [str(w) for w in result.warnings] == case.get("warnings", [])


@pytest.mark.parametrize(
    "case", [c for c in CASES if "equivalent" in c], ids=lambda c: c["name"].replace(" ", "_")
)
def test_spellings_of_one_meaning_normalise_to_the_same_guest_and_digest(
    case: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    results = [load_guest(case, spelling, tmp_path) for spelling in case["equivalent"]]
    guests = [r.desired.guests["g"] for r in results]
    assert all(g == guests[0] for g in guests), guests
    assert len({r.desired.digest for r in results}) == 1


def test_a_profile_value_is_judged_for_each_guest_that_takes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text(
        HOST.rsplit("  g:\n", 1)[0] + "  g1: {host: vmhost01, profile: odd}\n"
        "  g2: {host: vmhost01, profile: odd, memory: 4G}\n"
        "  g3: {host: vmhost01, profile: odd}\n"
        "profiles:\n"
        "  odd: {memory: 2000M, entitlement: 20%}\n",
        encoding="utf-8",
    )
    result = load_spec(Path("."))
    guests = result.desired.guests
    assert [guests[n].memory_mb for n in ("g1", "g2", "g3")] == [2048, 4096, 2048]
    assert guests["g1"].entitlement == guests["g2"].entitlement == guests["g3"].entitlement
    warned = sorted(str(w) for w in result.warnings)
    assert len(warned) == 2
    assert warned == [
        f"config.yaml:11:17: guest.{name}: memory: 2000M is not a multiple of 64 MB; "
        "rounded up to 2048 MB"
        for name in ("g1", "g3")
    ]
