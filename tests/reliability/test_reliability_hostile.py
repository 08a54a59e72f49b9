"""Hostile and broken input: a clear error, exit status 1, no traceback, and no side
effect — every file under .ivmctl/ (the emulator world, the state, the lock) is the same,
byte for byte, before and after. The commands run in process (`ivmctl.cli.main`, exactly
what the console script runs), so an unexpected exception fails the test outright.

Backing paths with shell metacharacters are the exception to "refused": commands are
argument lists, never given to a shell, so such a path is created literally and the
command it spells never runs. A path with a `..` component is refused before any
command is built.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ivmctl.cli import main
from ivmctl.runtime import World

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import ivmctl

BASE = """\
apiVersion: ivmctl/v1
hosts:
  vmhost01:
    version: "6.3"
    hardware: {cores: 4, memory: 16G, nics: [lan0]}
guests:
  app01:
    host: vmhost01
    power: off
    disks: [{backing: lv, path: /dev/vg01/rlvol_app01}]
"""
LAUGHS = "apiVersion: ivmctl/v1\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


@dataclass(frozen=True, kw_only=True)
class Case:
    """One bad input: files written into the configuration, the command, what it says."""

    name: str
    args: tuple[str, ...]
    expect: str
    files: dict[str, bytes] = field(default_factory=dict)
    prepare: Callable[[Path], None] = lambda config: None


def _plan_file(config: Path, change: Callable[[dict[str, Any]], None] | None = None,
               truncate: bool = False) -> None:  # fmt: skip
    data = (config / "saved.plan").read_bytes()
    if truncate:
        data = data[: len(data) // 2]
    elif change is not None:
        body = json.loads(data)
        change(body)
        data = json.dumps(body).encode()
    (config / "saved.plan").write_bytes(data)


def _tamper(body: dict[str, Any]) -> None:
    body["plan"]["runtime_generation"] = "999"


def _newer(body: dict[str, Any]) -> None:
    body["format_version"] = 99


def _garbage(path: str) -> Callable[[Path], None]:
    def write(config: Path) -> None:
        (config / path).write_bytes(b"\x00garbage\xff" * 100)

    return write


def _foreign_world(config: Path) -> None:
    db = config / ".ivmctl" / "emulator.db"
    db.unlink()
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()


def _newer_world(config: Path) -> None:
    conn = sqlite3.connect(config / ".ivmctl" / "emulator.db")
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()


def _newer_state(config: Path) -> None:
    path = config / ".ivmctl" / "state.json"
    body = json.loads(path.read_text())
    body["format_version"] = 99
    path.write_text(json.dumps(body))


def _journal(lines: list[dict[str, Any]]) -> Callable[[Path], None]:
    """A journal a killed apply might have left, continuing the state; then `lines`."""

    def write(config: Path) -> None:
        state = json.loads((config / ".ivmctl" / "state.json").read_text())
        head = {"format_version": 2, "journal": "ivmctl state journal",
                "lineage": state["lineage"], "serial": state["serial"]}  # fmt: skip
        body = "".join(json.dumps(line) + "\n" for line in [head, *lines])
        (config / ".ivmctl" / "state.journal").write_text(body)

    return write


def _newer_journal(config: Path) -> None:
    path = config / ".ivmctl" / "state.journal"
    head = json.loads(path.read_text().splitlines()[0])
    head["format_version"] = 99
    path.write_text(json.dumps(head) + "\n")


def _other_config_plan(config: Path) -> None:
    (config / "fleet.yaml").write_text(BASE.replace("power: off", "power: off\n    label: x"))


CASES = [
    Case(name="alias bomb", args=("plan",), files={"bomb.yaml": LAUGHS.encode()},
         expect="alias bomb"),
    Case(name="deep nesting", args=("plan",),
         files={"deep.yaml": b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n"},
         expect="nested more than"),
    Case(name="huge file", args=("plan",),
         files={"huge.yaml": b"apiVersion: ivmctl/v1\nnotes:\n"
                + b"".join(b"  - item%07d padding padding padding\n" % i for i in range(120_000))},
         expect='unknown field "notes"'),
    Case(name="non-UTF-8", args=("plan",), files={"bad.yaml": b"guests: {w\xff\xfe: {}}\n"},
         expect="not UTF-8"),
    Case(name="template reaching Python internals", args=("plan",),
         files={"t.yaml.j2": b"# {{ ''.__class__.__mro__[1].__subclasses__() }}\n"},
         expect="the sandbox forbids"),
    Case(name="template reaching function globals", args=("plan",),
         files={"t.yaml.j2": b"# {{ cycler.__init__.__globals__.os.system('id') }}\n"},
         expect="the sandbox forbids"),
    Case(name="template including a host file", args=("plan",),
         files={"t.yaml.j2": b"# {% include '/etc/passwd' %}\n"},
         expect="template error"),
    Case(name="template importing a module", args=("plan",),
         files={"t.yaml.j2": b"# {% import 'os' as os %}\n"},
         expect="template error"),
    Case(name="var file outside the config dir", args=("plan", "--var-file", "/etc/hostname"),
         files={"t.yaml.j2": b"# {{ x }}\n"}, expect="lies outside the configuration directory"),
    Case(name="var file escaping with ..", args=("plan", "--var-file", "../outside.yaml"),
         files={"t.yaml.j2": b"# {{ x }}\n"}, expect="lies outside the configuration directory"),
    Case(name="tampered plan file", args=("apply", "saved.plan"),
         prepare=lambda c: _plan_file(c, _tamper), expect="checksum"),
    Case(name="truncated plan file", args=("apply", "saved.plan"),
         prepare=lambda c: _plan_file(c, truncate=True), expect="saved plan"),
    Case(name="plan file of a newer format", args=("apply", "saved.plan"),
         prepare=lambda c: _plan_file(c, _newer), expect="format version 99"),
    Case(name="plan file of another configuration", args=("apply", "saved.plan"),
         prepare=_other_config_plan, expect="made for a different configuration"),
    Case(name="corrupt emulator world", args=("plan",), prepare=_garbage(".ivmctl/emulator.db"),
         expect="is not a usable emulator world: SQLite says file is not a database"),
    Case(name="foreign SQLite database as world", args=("plan",), prepare=_foreign_world,
         expect="it is not an ivmctl emulator database"),
    Case(name="newer emulator world", args=("plan",), prepare=_newer_world,
         expect="schema version 99, newer than"),
    Case(name="corrupt state file", args=("plan",), prepare=_garbage(".ivmctl/state.json"),
         expect="is corrupt"),
    Case(name="truncated state file", args=("apply", "--auto-approve"),
         prepare=lambda c: (c / ".ivmctl" / "state.json").write_text('{"format_version": 1, "li'),
         expect="is corrupt"),
    Case(name="newer state file", args=("apply", "--auto-approve"), prepare=_newer_state,
         expect="format version 99; this ivmctl reads up to"),
    Case(name="corrupt state journal", args=("apply", "--auto-approve"),
         prepare=_journal([{"record": {"address": "guest.x"}}, {"forget": "guest.app01"}]),
         expect="state journal"),
    Case(name="state journal of a newer format", args=("plan",),
         prepare=lambda c: (_journal([])(c), _newer_journal(c)),
         expect="format version 99; this ivmctl reads up to"),
]  # fmt: skip


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = tmp_path_factory.mktemp("hostile") / "config"
    config.mkdir()
    (config / "fleet.yaml").write_text(BASE, encoding="utf-8")
    (config.parent / "outside.yaml").write_text("x: 1\n", encoding="utf-8")
    ivmctl("apply", "--auto-approve", cwd=config)
    (config / "fleet.yaml").write_text(BASE.replace("power: off", "power: on"), encoding="utf-8")
    ivmctl("plan", "-out", "saved.plan", cwd=config)
    (config / "fleet.yaml").write_text(BASE, encoding="utf-8")
    return config


def files_under(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and "cache" not in p.relative_to(directory).parts
    }


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input_is_refused_clearly_without_side_effect(
    case: Case, template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, figures: Any,
) -> None:  # fmt: skip
    for key in [k for k in os.environ if k.startswith("IVMCTL_")]:
        monkeypatch.delenv(key)
    config = tmp_path / "config"
    shutil.copytree(template, config)
    shutil.copy(template.parent / "outside.yaml", tmp_path / "outside.yaml")
    for name, body in case.files.items():
        (config / name).write_bytes(body)
    case.prepare(config)
    monkeypatch.chdir(config)
    before = files_under(config / ".ivmctl")
    code, out, err = run_cli(["-C", str(config), *case.args], capsys)
    figures.add("hostile_input", "bad_inputs_tried")
    assert code == 1, out + err
    assert case.expect in err, err
    assert "Traceback" not in out + err
    assert files_under(config / ".ivmctl") == before, "a refused input changed .ivmctl/"
    figures.add("hostile_input", "refused_without_side_effect")


SHELLY = [
    "/ivm/$(touch {canary}).img",
    "/ivm/`touch {canary}`.img",
    "/ivm/a;touch {canary};b.img",
    "/ivm/a|touch {canary}&&x.img",
    "/ivm/'quoted' \"double\" $HOME * ?.img",
]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("IVMCTL_")]:
        monkeypatch.delenv(key)


def test_shell_metacharacters_in_backing_paths_pass_literally_and_run_nothing(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str], clean_env: None,
    figures: Any,
) -> None:  # fmt: skip
    canary = tmp_path / "pwned"
    paths = [p.format(canary=canary) for p in SHELLY]
    disks = "".join(f"      - {{backing: file, path: {json.dumps(p)}, size: 1G}}\n" for p in paths)
    body = BASE.replace("    disks: [{backing: lv, path: /dev/vg01/rlvol_app01}]\n",
                        "    disks:\n" + disks)  # fmt: skip
    (config / "fleet.yaml").write_text(body, encoding="utf-8")
    code, commands, _ = run_cli(["-C", str(config), "plan", "--commands"], capsys)
    assert code == 0 and "'/ivm/$(touch" in commands  # shown quoted, as a shell needs it
    code, out, err = run_cli(["-C", str(config), "apply", "--auto-approve"], capsys)
    assert code == 0, out + err
    assert not canary.exists(), "a backing path reached a shell"
    with World.open(config / ".ivmctl" / "emulator.db", create=False) as world:
        listing = world.execute("vmhost01", ["hpvmdevmgmt", "-l", "all"]).stdout
    for path in paths:
        assert path + ":" in listing
    figures.add("hostile_input", "shell_metacharacter_paths_passed_literally", len(paths))


@pytest.mark.parametrize("path", ["/ivm/../etc/passwd", "ivm/relative.img", "/ivm/a:b.img",
                                  "/ivm/./x.img", "/ivm/new\nline.img"])  # fmt: skip
def test_a_backing_path_that_would_act_elsewhere_is_refused_before_any_command(
    path: str, config: Path, capsys: pytest.CaptureFixture[str], clean_env: None,
    figures: Any,
) -> None:  # fmt: skip
    body = BASE.replace("{backing: lv, path: /dev/vg01/rlvol_app01}",
                        f"{{backing: file, path: {json.dumps(path)}, size: 1G}}")  # fmt: skip
    (config / "fleet.yaml").write_text(body, encoding="utf-8")
    code, out, err = run_cli(["-C", str(config), "apply", "--auto-approve"], capsys)
    figures.add("hostile_input", "bad_inputs_tried")
    assert code == 1, out + err
    # Validation refuses it (rules.backing_path_problem); the provider would too.
    assert "cannot be used" in out + err
    assert "Traceback" not in out + err
    world_file = config / ".ivmctl" / "emulator.db"
    if world_file.exists():
        with World.open(world_file, create=False) as world:
            log = [e.argv[0] for e in world.log("vmhost01")]
        assert "hpvmdevmgmt" not in [a for a in log if a != "hpvmstatus"]
        assert "hpvmcreate" not in log
