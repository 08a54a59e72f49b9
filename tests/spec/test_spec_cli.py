"""`ivmctl validate` and `ivmctl fmt` as a user runs them: exit codes, messages, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivmctl.cli import cli, main

VALID = """apiVersion: ivmctl/v1
hosts:
  vmhost01:
    hardware: {cores: 8, memory: 64G, nics: [lan0]}
    vswitches: {vswprod: {nic: lan0}}
guests:
  web01:
    host: vmhost01
    memory: 4100M
    nics:
      - {vswitch: vswprod}
"""
INVALID = VALID.replace("{vswitch: vswprod}", "{vswitch: vswprd}").replace("4100M", "4G")


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_validate_exits_0_and_summarises_a_valid_configuration(write_config, capsys) -> None:
    write_config({"config.yaml": VALID})
    code, out, err = run(["validate"], capsys)
    assert code == 0
    assert out == "The configuration is valid: 1 host, 1 vswitch, 1 guest (1 file).\n"
    assert err == (
        "warning: config.yaml:9:13: guest.web01: memory: 4100M is not a multiple of 64 MB; "
        "rounded up to 4160 MB\n"
    )


def test_validate_exits_1_and_lists_every_problem_without_traceback(write_config, capsys) -> None:
    write_config({"config.yaml": INVALID.replace("host: vmhost01", "host: vmhost1")})
    code, _, err = run(["validate"], capsys)
    assert code == 1
    assert "Traceback" not in err
    assert err.splitlines() == [
        "error: the configuration has 1 problem",
        '  config.yaml:8:11: guest.web01: host: no host "vmhost1" (did you mean "vmhost01"?)',
        "  Declare it under hosts: or correct the name.",
    ]


def test_validate_reports_the_vswitch_typo_exactly_as_documented(write_config, capsys) -> None:
    write_config({"config.yaml": INVALID})
    code, _, err = run(["validate"], capsys)
    assert code == 1
    assert (
        '  config.yaml:11:19: guest.web01: nics[0].vswitch: no vswitch "vswprd" on host '
        'vmhost01 (did you mean "vswprod"?)'
    ) in err.splitlines()


def test_validate_json_reports_problems_with_positions(write_config, capsys) -> None:
    write_config({"config.yaml": INVALID})
    code, out, _ = run(["validate", "--json"], capsys)
    assert code == 1
    report = json.loads(out)
    assert report["format_version"] == 1
    assert report["valid"] is False
    (error,) = report["errors"]
    assert {k: error[k] for k in ("file", "line", "column", "address", "path")} == {
        "file": "config.yaml",
        "line": 11,
        "column": 19,
        "address": "guest.web01",
        "path": "nics[0].vswitch",
    }


def test_validate_json_of_a_valid_configuration(write_config, capsys) -> None:
    write_config({"config.yaml": VALID})
    code, out, _ = run(["validate", "--json"], capsys)
    report = json.loads(out)
    assert code == 0
    assert report["valid"] is True
    assert report["counts"] == {"hosts": 1, "vswitches": 1, "guests": 1}
    assert report["digest"].startswith("sha256:")
    assert report["warnings"][0]["line"] == 9


def test_validate_takes_the_directory_from_dash_c(tmp_path: Path, capsys) -> None:
    (tmp_path / "c.yaml").write_text(VALID, encoding="utf-8")
    code, out, _ = run(["-C", str(tmp_path), "validate"], capsys)
    assert code == 0 and "valid" in out


def test_validate_passes_variables(write_config, capsys) -> None:
    write_config({"c.yaml.j2": "apiVersion: ivmctl/v1\nhosts: {{ '{' }}{{ name }}: {}}\n"})
    code, out, _ = run(["validate", "--var", "name=h9"], capsys)
    assert code == 0, out
    code, _, err = run(["validate", "--var", "nameh9"], capsys)
    assert code == 1 and "--var 'nameh9' is not NAME=VALUE" in err


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, 'no configuration files (*.yaml, *.yml, *.yaml.j2) in "."'),
        ({"a.yaml": b"apiVersion: ivmctl/v1\nx: \xff\n"}, "a.yaml:2:4: the file is not UTF-8"),
        ({"a.yaml": "a: [\n"}, "a.yaml:2:1: not valid YAML"),
    ],
)
def test_bad_input_gets_one_clear_message_and_exit_1(write_config, capsys, files, message) -> None:
    write_config(files)
    code, _, err = run(["validate"], capsys)
    assert code == 1
    assert message in err
    assert "Traceback" not in err


def test_an_unreadable_file_is_reported(write_config, capsys, monkeypatch) -> None:
    write_config({"a.yaml": VALID})
    real = Path.read_bytes

    def deny(self: Path) -> bytes:
        if self.name == "a.yaml":
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", deny)
    code, _, err = run(["validate"], capsys)
    assert code == 1
    assert "a.yaml: cannot read file: Permission denied" in err


def test_a_missing_directory_is_reported(tmp_path: Path, capsys) -> None:
    code, _, err = run(["-C", str(tmp_path / "nope"), "validate"], capsys)
    assert code == 1
    assert "does not exist" in err


UNFORMATTED = """# fleet
guests:
  web01:
    memory: 4G   # boot memory
    host: vmhost01
    disks:
    - {path: /ivm/web01.img, backing: file}
apiVersion: ivmctl/v1
hosts:
  vmhost01: {}
"""
FORMATTED = """# fleet
apiVersion: ivmctl/v1
hosts:
  vmhost01: {}
guests:
  web01:
    host: vmhost01
    memory: 4G   # boot memory
    disks:
      - {backing: file, path: /ivm/web01.img}
"""


def test_fmt_check_exits_1_and_diff_shows_the_change(write_config, capsys) -> None:
    config = write_config({"a.yaml": UNFORMATTED})
    code, out, err = run(["fmt", "--check", "--diff"], capsys)
    assert code == 1
    assert "+      - {backing: file, path: /ivm/web01.img}" in out
    assert "1 file not formatted: a.yaml" in err
    assert (config / "a.yaml").read_text() == UNFORMATTED


def test_fmt_rewrites_in_canonical_order_keeping_comments(write_config, capsys) -> None:
    config = write_config({"a.yaml": UNFORMATTED})
    code, _, _ = run(["fmt"], capsys)
    assert code == 0
    assert (config / "a.yaml").read_text() == FORMATTED
    assert run(["fmt", "--check"], capsys)[0] == 0


def test_fmt_leaves_templates_alone_but_formats_plain_j2_files(write_config, capsys) -> None:
    template = "guests:\n{% for i in [1] %}\n  g{{ i }}: {memory: 2G, host: h}\n{% endfor %}\n"
    config = write_config(
        {"t.yaml.j2": template, "p.yaml.j2": "hosts: {h: {}}\napiVersion: ivmctl/v1\n"}
    )
    run(["fmt"], capsys)
    assert (config / "t.yaml.j2").read_text() == template
    assert (config / "p.yaml.j2").read_text() == "apiVersion: ivmctl/v1\nhosts: {h: {}}\n"


def test_fmt_keeps_yaml_1_2_meaning(write_config, capsys) -> None:
    text = (
        "guests:\n"
        "  g: {power: on, vcpus: 017, host: h, nics: [{mac: 0x0A0000000101, vswitch: v}]}\n"
    )
    config = write_config({"a.yaml": text})
    run(["fmt"], capsys)
    from ivmctl.spec.yamlio import parse_yaml

    assert parse_yaml((config / "a.yaml").read_text()) == parse_yaml(text)


def test_fmt_reports_a_file_it_cannot_read(write_config, capsys) -> None:
    write_config({"a.yaml": "a: 1\na: 2\n"})
    code, _, err = run(["fmt"], capsys)
    assert code == 1
    assert 'a.yaml:2:1: key "a" appears twice' in err


def test_commands_have_help() -> None:
    result = CliRunner().invoke(cli, ["validate", "--help"])
    assert result.exit_code == 0 and "--var-file" in result.output
    result = CliRunner().invoke(cli, ["fmt", "--help"])
    assert result.exit_code == 0 and "--check" in result.output


def test_fmt_reports_a_file_that_is_not_utf8(write_config, capsys) -> None:
    write_config({"a.yaml": b"x: \xff\n"})
    code, _, err = run(["fmt"], capsys)
    assert code == 1
    assert "a.yaml:1:4: the file is not UTF-8" in err


class _Policy:
    """A test plugin: a template filter and a policy that refuses guests named web*."""

    from ivmctl.providers import hookimpl

    @hookimpl
    def template_filters(self):
        return {"shout": lambda text: str(text).upper()}

    @hookimpl
    def validate_desired(self, desired):
        from ivmctl.providers.base import Problem

        return [
            Problem(address=f"guest.{name}", message="web guests need a change ticket")
            for name in desired.guests
            if name.startswith("web")
        ]


@pytest.fixture
def with_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    from ivmctl.providers import manager

    real = manager.get_plugin_manager
    monkeypatch.setattr(
        manager,
        "get_plugin_manager",
        lambda **kw: real(load_entrypoints=False, plugins=[("test-policy", _Policy())]),
    )


def test_validate_uses_plugin_filters_and_reports_policy_at_file_and_line(
    write_config, capsys, with_policy
) -> None:
    write_config({"c.yaml": VALID.replace("web01:", "{{ 'web01' | shout | lower }}:")})
    code, _, err = run(["validate"], capsys)
    assert code == 1
    assert err.splitlines()[1:3] == [
        "error: the configuration is blocked by policy: 1 problem",
        "  c.yaml:7:3: guest.web01: [test-policy] web guests need a change ticket",
    ]


def test_validate_json_lists_policy_problems(write_config, capsys, with_policy) -> None:
    write_config({"c.yaml": VALID})
    code, out, _ = run(["validate", "--json"], capsys)
    assert code == 1
    (error,) = json.loads(out)["errors"]
    assert (error["kind"], error["line"], error["address"]) == ("PluginError", 7, "guest.web01")


def test_fmt_of_a_missing_directory_is_reported(tmp_path: Path, capsys) -> None:
    code, _, err = run(["-C", str(tmp_path / "nope"), "fmt"], capsys)
    assert code == 1 and "configuration directory does not exist" in err


def test_dash_c_may_also_follow_the_subcommand(tmp_path: Path, capsys) -> None:
    (tmp_path / "c.yaml").write_text(VALID.replace("4100M", "4G"), encoding="utf-8")
    code, out, _ = run(["validate", "-C", str(tmp_path)], capsys)
    assert code == 0 and "valid" in out
    assert run(["fmt", "--check", "-C", str(tmp_path)], capsys)[0] == 0
