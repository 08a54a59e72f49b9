"""The built DesiredState is reused while every input of a load is unchanged, and any
change to an input (a file, a var file, a variable, the environment, the code) builds it
again."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ivmctl.spec import InvalidConfig, LoadResult, SpecOptions, desired_cache, loader, yamlio
from ivmctl.spec.loader import load_spec

HOSTS = """apiVersion: ivmctl/v1
hosts:
  vmhost01:
    hardware: {cores: 8, memory: 64G, nics: [lan0]}
    vswitches:
      vswprod: {nic: lan0}
"""
GUESTS = """guests:
  web01:
    host: vmhost01
    memory: 4000M
    nics:
      - {vswitch: vswprod}
"""
TEMPLATE = """guests:
  {{ name }}:
    host: vmhost01
"""


class Builds:
    """Counts the loads that built the desired state rather than reading the cache."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        build = loader._load_with_model

        def counting(config_dir: Path, options: SpecOptions) -> tuple[LoadResult, bytes]:
            self.count += 1
            return build(config_dir, options)

        monkeypatch.setattr(loader, "_load_with_model", counting)


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> Builds:
    return Builds(monkeypatch)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "hosts.yaml").write_text(HOSTS, encoding="utf-8")
    (tmp_path / "guests.yaml").write_text(GUESTS, encoding="utf-8")
    (tmp_path / "env.vars.yaml").write_text("name: web02\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return Path(".")


def options(**changes: Any) -> SpecOptions:
    base = SpecOptions(environ={}, cache_dir=Path(".ivmctl/cache"))
    return replace(base, **changes)


def test_an_unchanged_configuration_is_not_built_again(config: Path, builds: Builds) -> None:
    first = load_spec(config, options())
    second = load_spec(config, options())
    assert builds.count == 1
    assert second.desired.guests == first.desired.guests
    assert second.desired.hosts == first.desired.hosts
    assert second.desired.provider == first.desired.provider
    assert second.desired.digest == first.desired.digest
    assert second.files == first.files == ("guests.yaml", "hosts.yaml")


def test_warnings_come_back_from_the_cache(config: Path, builds: Builds) -> None:
    first = load_spec(config, options())
    assert [w.summary for w in first.warnings] == [
        "4000M is not a multiple of 64 MB; rounded up to 4032 MB"
    ]
    assert load_spec(config, options()).warnings == first.warnings
    assert builds.count == 1


def test_sources_of_a_cached_load_still_give_file_and_line(config: Path, builds: Builds) -> None:
    load_spec(config, options())
    sources = load_spec(config, options()).desired.sources
    assert builds.count == 1  # locations are only built when asked for
    assert str(sources["guest.web01:memory"]) == "guests.yaml:4:13: guest.web01: memory"
    assert builds.count == 2


def _edit_file(config: Path, monkeypatch: pytest.MonkeyPatch) -> SpecOptions:
    (config / "guests.yaml").write_text(GUESTS.replace("4000M", "4G"), encoding="utf-8")
    return options()


def _add_file(config: Path, monkeypatch: pytest.MonkeyPatch) -> SpecOptions:
    (config / "more.yaml").write_text("profiles:\n  small: {vcpus: 1}\n", encoding="utf-8")
    return options()


def _remove_file(config: Path, monkeypatch: pytest.MonkeyPatch) -> SpecOptions:
    (config / "guests.yaml").unlink()
    return options()


def _rename_file(config: Path, monkeypatch: pytest.MonkeyPatch) -> SpecOptions:
    (config / "guests.yaml").rename(config / "zz-guests.yaml")
    return options()


def _touch_only(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> SpecOptions:  # same bytes: not a change
    os.utime(config / "guests.yaml", (1, 1))
    return options()


def _var_file(config: Path, monkeypatch: pytest.MonkeyPatch) -> SpecOptions:
    return options(var_files=(Path("env.vars.yaml"),))


def _var_file_content(config: Path, monkeypatch: pytest.MonkeyPatch) -> SpecOptions:
    (config / "env.vars.yaml").write_text("name: web03\n", encoding="utf-8")
    return options(var_files=(Path("env.vars.yaml"),))


def _variable(config: Path, monkeypatch: pytest.MonkeyPatch) -> SpecOptions:
    return options(variables={"name": "web09"})


def _environment(config: Path, monkeypatch: pytest.MonkeyPatch) -> SpecOptions:
    return options(environ={"IVMCTL_VAR_name": "web09"})


def _directory_spelling(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> SpecOptions:  # file names in messages change
    return options()


def _code(config: Path, monkeypatch: pytest.MonkeyPatch) -> SpecOptions:
    code = config / "code.py"
    code.write_text("RULE = 2\n", encoding="utf-8")
    files = desired_cache.code_files()
    monkeypatch.setattr(desired_cache, "code_files", lambda: [*files, code.resolve()])
    desired_cache.code_digest.cache_clear()  # what a new process would see
    return options()


def _loader_version(config: Path, monkeypatch: pytest.MonkeyPatch) -> SpecOptions:
    monkeypatch.setattr(yamlio, "FAST_LOADER_NAME", "yaml-rs 9.9.9")
    desired_cache.code_digest.cache_clear()
    return options()


CHANGES: list[tuple[Callable[..., SpecOptions], bool]] = [
    (_edit_file, True),
    (_add_file, True),
    (_remove_file, True),
    (_rename_file, True),
    (_var_file, True),
    (_variable, True),
    (_environment, True),
    (_directory_spelling, True),
    (_code, True),
    (_loader_version, True),
    (_touch_only, False),
]


@pytest.mark.parametrize(
    ("change", "rebuilds"),
    [pytest.param(c, r, id=c.__name__.strip("_")) for c, r in CHANGES],
)
def test_a_changed_input_builds_the_desired_state_again(
    config: Path,
    builds: Builds,
    monkeypatch: pytest.MonkeyPatch,
    change: Callable[..., SpecOptions],
    rebuilds: bool,
) -> None:
    load_spec(config, options())
    changed = change(config, monkeypatch)
    directory = Path.cwd() if change is _directory_spelling else config
    load_spec(directory, changed)
    assert builds.count == (2 if rebuilds else 1)
    load_spec(directory, changed)  # and that result is cached in turn
    assert builds.count == (2 if rebuilds else 1)


@pytest.fixture(autouse=True)
def _fresh_code_digest() -> Any:
    desired_cache.code_digest.cache_clear()
    yield
    desired_cache.code_digest.cache_clear()


def test_a_template_variable_change_changes_the_result(config: Path, builds: Builds) -> None:
    (config / "guests.yaml").write_text(TEMPLATE, encoding="utf-8")
    first = load_spec(config, options(variables={"name": "web01"}))
    second = load_spec(config, options(environ={"IVMCTL_VAR_name": "web02"}))
    third = load_spec(config, options(variables={"name": "web01"}))
    assert list(first.desired.guests) == ["web01"]
    assert list(second.desired.guests) == ["web02"]
    assert list(third.desired.guests) == ["web01"]
    assert builds.count == 3  # one entry is kept: the latest inputs


def test_templates_with_plugin_filters_are_never_cached(config: Path, builds: Builds) -> None:
    (config / "guests.yaml").write_text(TEMPLATE.replace("{{ name }}", "{{ 'web' | up }}"))
    filters = {"up": str.upper}
    assert list(load_spec(config, options(filters=filters)).desired.guests) == ["WEB"]
    load_spec(config, options(filters=filters))
    assert builds.count == 2
    assert not (config / ".ivmctl/cache" / desired_cache.ENTRY).exists()


def test_plain_files_with_plugin_filters_are_cached(config: Path, builds: Builds) -> None:
    load_spec(config, options(filters={"up": str.upper}))
    load_spec(config, options(filters={"up": str.upper}))
    assert builds.count == 1


def test_an_invalid_configuration_is_not_cached(config: Path, builds: Builds) -> None:
    (config / "guests.yaml").write_text(GUESTS.replace("vmhost01", "nohost"), encoding="utf-8")
    for _ in range(2):
        with pytest.raises(InvalidConfig, match="1 problem"):
            load_spec(config, options())
    assert builds.count == 2


def test_no_cache_directory_means_no_cache(config: Path, builds: Builds) -> None:
    load_spec(config, options(cache_dir=None))
    load_spec(config, options(cache_dir=None))
    assert builds.count == 2


def test_a_damaged_entry_is_a_miss(config: Path, builds: Builds) -> None:
    load_spec(config, options())
    entry = config / ".ivmctl/cache" / desired_cache.ENTRY
    entry.write_bytes(entry.read_bytes()[:-100])
    assert load_spec(config, options()).desired.guests["web01"].memory_mb == 4032
    assert builds.count == 2


class _Planted:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("touch planted",))


def test_a_planted_entry_cannot_run_code(config: Path, builds: Builds) -> None:
    load_spec(config, options())
    entry = config / ".ivmctl/cache" / desired_cache.ENTRY
    header = entry.read_bytes().split(b"\n", 2)
    payload = pickle.dumps((_Planted(), {}, {}, "sha256:x", (), ()))
    entry.write_bytes(header[0] + b"\n" + header[1] + b"\n" + payload)
    result = load_spec(config, options())
    assert not (config / "planted").exists()
    assert builds.count == 2
    assert list(result.desired.guests) == ["web01"]


def test_unreadable_code_files_mean_no_cache(
    config: Path, builds: Builds, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(desired_cache, "code_files", lambda: [config / "missing.py"])
    load_spec(config, options())
    load_spec(config, options())
    assert builds.count == 2
