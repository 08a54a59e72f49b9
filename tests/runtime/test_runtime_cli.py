"""`ivmctl emulator ...` through click's CliRunner, as a user types it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ivmctl.cli import cli
from ivmctl.errors import EmulatorError


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IVMCTL_EMULATOR", raising=False)
    return CliRunner()


def invoke(runner: CliRunner, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(cli, list(args), env=env, catch_exceptions=True)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def add_host(runner: CliRunner, *extra: str) -> None:
    code, out = invoke(
        runner,
        "emulator",
        "host",
        "add",
        "vmhost01",
        "--cores",
        "8",
        "--memory",
        "64G",
        "--nics",
        "lan0,lan1",
        *extra,
    )
    assert code == 0, out


def test_host_add_creates_the_default_world_in_the_current_directory(
    runner: CliRunner, tmp_path: Path
) -> None:
    add_host(runner)
    assert (tmp_path / ".ivmctl" / "emulator.db").exists()


def test_host_add_reports_the_hardware(runner: CliRunner) -> None:
    code, out = invoke(
        runner,
        "emulator",
        "host",
        "add",
        "h1",
        "--cores",
        "4",
        "--memory",
        "16G",
        "--version",
        "4.3",
        "--mhz",
        "1400",
    )
    assert code == 0
    assert out == "host h1: Integrity VM 4.3, 4 cores at 1400 MHz, 16 GB, NICs lan0\n"


def test_host_list_shows_every_host(runner: CliRunner) -> None:
    add_host(runner)
    code, out = invoke(runner, "emulator", "host", "list")
    assert code == 0
    assert "vmhost01         6.3          8    64 GB  1600  lan0,lan1" in out


def test_host_remove_is_refused_while_guests_exist(runner: CliRunner) -> None:
    add_host(runner)
    invoke(runner, "emulator", "exec", "vmhost01", "--", "hpvmcreate", "-P", "g")
    with pytest.raises(EmulatorError, match="still has 1 guest"):
        invoke(runner, "emulator", "host", "remove", "vmhost01")


def test_exec_prints_the_output_and_exits_with_the_command_status(runner: CliRunner) -> None:
    add_host(runner)
    code, out = invoke(runner, "emulator", "exec", "vmhost01", "--", "hpvmcreate", "-P", "g")
    assert (code, out) == (0, "")
    code, out = invoke(runner, "emulator", "exec", "vmhost01", "--", "hpvmstart", "-P", "g")
    assert (code, out) == (0, "hpvmstart: Successful start initiation of guest 'g'\n")
    code, out = invoke(runner, "emulator", "exec", "vmhost01", "--", "hpvmstart", "-P", "g")
    assert code == 1
    assert "hpvmstart: ERROR (g): The virtual machine is already running." in out


def test_path_option_and_environment_pick_the_world(runner: CliRunner, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    add_host(runner, "--path", str(other))
    code, out = invoke(runner, "emulator", "host", "list", env={"IVMCTL_EMULATOR": str(other)})
    assert code == 0 and "vmhost01" in out
    assert not (tmp_path / ".ivmctl" / "emulator.db").exists()


def test_a_missing_world_is_explained(runner: CliRunner) -> None:
    with pytest.raises(EmulatorError, match="no emulator world"):
        invoke(runner, "emulator", "host", "list")


def test_log_shows_time_status_and_command_line(runner: CliRunner) -> None:
    add_host(runner)
    invoke(runner, "emulator", "exec", "vmhost01", "--", "hpvmcreate", "-P", "g", "-l", "a b")
    invoke(runner, "emulator", "exec", "vmhost01", "--", "hpvmcreate", "-P", "g")
    code, out = invoke(runner, "emulator", "log", "vmhost01")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert lines[0].endswith("  0 hpvmcreate -P g -l 'a b'")
    assert lines[1].endswith("  1 hpvmcreate -P g")


def test_faults_are_set_listed_and_cleared(runner: CliRunner) -> None:
    add_host(runner)
    code, out = invoke(
        runner,
        "emulator",
        "faults",
        "vmhost01",
        "--fail-starts",
        "2",
        "--latency",
        "start=1.5",
        "--abort-migration",
    )
    assert code == 0
    assert "fail_starts=2 abort_migrations=1" in out and "latency=hpvmstart=1.5" in out
    code, out = invoke(runner, "emulator", "faults", "--list")
    assert "vmhost01: fail_starts=2" in out
    code, out = invoke(runner, "emulator", "faults", "vmhost01", "--clear")
    assert "fail_starts=0 abort_migrations=0 unreachable=no" in out


def test_an_unreachable_host_fails_every_command(runner: CliRunner) -> None:
    add_host(runner)
    invoke(runner, "emulator", "faults", "vmhost01", "--unreachable")
    code, out = invoke(runner, "emulator", "exec", "vmhost01", "--", "hpvmstatus")
    assert code == 255 and "Connection refused" in out
    invoke(runner, "emulator", "faults", "vmhost01", "--reachable")
    code, _ = invoke(runner, "emulator", "exec", "vmhost01", "--", "hpvmstatus")
    assert code == 0


def test_a_bad_latency_setting_is_explained(runner: CliRunner) -> None:
    add_host(runner)
    with pytest.raises(EmulatorError, match="KIND=SECONDS"):
        invoke(runner, "emulator", "faults", "vmhost01", "--latency", "start")


def test_the_installed_command_prints_errors_in_one_or_two_sentences(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "ivmctl"
    if not exe.exists():
        pytest.skip("ivmctl is not installed in this environment")
    result = subprocess.run(
        [str(exe), "emulator", "host", "list", "--path", str(tmp_path / "none.db")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "no emulator world" in result.stderr
