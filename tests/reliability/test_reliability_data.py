"""Data protection: what ivmctl deletes, and what it never does.

* Deleting a guest (removed from the configuration, or `destroy`) runs `hpvmremove` only:
  its backing files and logical volumes stay on the host with their size, and a guest
  declared again uses the same file. No configuration option deletes backing storage.
* `prevent_destroy` is remembered in the state: a guest removed from the configuration
  keeps it, so neither `apply` nor `destroy` deletes it, and nothing changes.
* `destroy` of everything asks to type `destroy N` (N: the number of objects): without a
  terminal it is refused; on a terminal (a pty here) any other answer is refused too.
"""

from __future__ import annotations

import os
import pty
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import environ, snapshot

FLEET = """\
apiVersion: ivmctl/v1
hosts:
  vmhost01:
    version: "6.3"
    hardware: {cores: 4, memory: 16G, nics: [lan0]}
guests:
  keep01:
    host: vmhost01
    power: off
    disks: [{backing: lv, path: /dev/vg01/rlvol_keep01}]
  data01:
    host: vmhost01
    os: hpux
    lifecycle: {prevent_destroy: PREVENT}
    disks:
      - {backing: file, path: /ivm/data01/root.img, size: 8G}
      - {backing: lv, path: /dev/vg01/rlvol_data01}
"""
DATA01 = FLEET[FLEET.index("  data01:") :]


def files_on_host(config: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{config / '.ivmctl' / 'emulator.db'}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT path, size_mb FROM files ORDER BY path").fetchall())
    finally:
        conn.close()


def guests_on_host(run: Any) -> list[str]:
    out = run("emulator", "exec", "vmhost01", "--", "hpvmstatus", "-M").stdout
    return sorted(line.split(":")[0] for line in out.splitlines() if line)


def test_deleting_a_guest_keeps_its_backing_file_and_lv_for_reuse(
    run: Any, config: Path, figures: Any
) -> None:
    (config / "fleet.yaml").write_text(FLEET.replace("PREVENT", "false"))
    run("apply", "--auto-approve")
    assert files_on_host(config) == {"/ivm/data01/root.img": 8192}
    (config / "fleet.yaml").write_text(FLEET.replace(DATA01, ""))
    deleted = run("apply", "--auto-approve")
    assert "1 to destroy" in deleted.stdout
    assert guests_on_host(run) == ["keep01"]
    assert files_on_host(config) == {"/ivm/data01/root.img": 8192}  # the file stays
    removes = [
        e for e in run("emulator", "log", "vmhost01").stdout.splitlines() if "hpvmremove" in e
    ]
    assert len(removes) == 1 and "hpvmremove -P data01" in removes[0]
    # declared again, the guest is created on the same file and the same LV
    (config / "fleet.yaml").write_text(FLEET.replace("PREVENT", "false"))
    run("apply", "--auto-approve")
    detail = run("emulator", "exec", "vmhost01", "--", "hpvmstatus", "-d", "-P", "data01").stdout
    assert "/ivm/data01/root.img" in detail and "/dev/vg01/rlvol_data01" in detail
    assert files_on_host(config) == {"/ivm/data01/root.img": 8192}
    figures.add("data_protection", "deletions_keeping_backing_storage")


def test_prevent_destroy_is_remembered_for_a_guest_removed_from_the_configuration(
    run: Any, config: Path, figures: Any
) -> None:
    (config / "fleet.yaml").write_text(FLEET.replace("PREVENT", "true"))
    run("apply", "--auto-approve")
    (config / "fleet.yaml").write_text(FLEET.replace(DATA01, ""))
    before = snapshot(config)
    for command in (("plan",), ("apply", "--auto-approve"), ("destroy", "--auto-approve")):
        refused = run(*command, check=1)
        assert "guest.data01" in refused.stderr and "prevent_destroy" in refused.stderr, command
        assert "Traceback" not in refused.stderr
        figures.add("data_protection", "prevent_destroy_refusals")
    assert snapshot(config)[1:] == before[1:]  # state and lock untouched
    assert guests_on_host(run) == ["data01", "keep01"]


@pytest.mark.soak  # tests/e2e covers the refusal; the pty test below covers the count
def test_destroy_without_a_terminal_is_refused_and_names_the_count(
    run: Any, config: Path, figures: Any
) -> None:
    (config / "fleet.yaml").write_text(FLEET.replace("PREVENT", "false"))
    run("apply", "--auto-approve")
    before = snapshot(config)
    refused = run("destroy", check=1)
    assert "destroy cancelled: nothing was changed" in refused.stderr
    assert "Type 'destroy 2' to confirm" in refused.stderr
    assert snapshot(config)[1:] == before[1:]
    assert guests_on_host(run) == ["data01", "keep01"]
    figures.add("data_protection", "destroy_confirmations_checked")


def _destroy_on_a_terminal(config: Path, answer: str) -> tuple[int, str]:
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "ivmctl", "destroy"], cwd=config,
                            env=environ(), stdin=child, stdout=child, stderr=child)  # fmt: skip
    os.close(child)
    seen = b""
    deadline = time.monotonic() + 60
    while b"will be accepted" not in seen and time.monotonic() < deadline:
        try:
            seen += os.read(main, 4096)
        except OSError:
            break
    os.write(main, answer.encode() + b"\n")
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    return proc.wait(timeout=60), seen.decode(errors="replace")


def test_destroy_on_a_terminal_needs_the_exact_count(run: Any, config: Path, figures: Any) -> None:
    (config / "fleet.yaml").write_text(FLEET.replace("PREVENT", "false"))
    run("apply", "--auto-approve")
    code, shown = _destroy_on_a_terminal(config, "yes")
    assert code == 1 and "Only 'destroy 2' will be accepted" in shown, shown
    assert guests_on_host(run) == ["data01", "keep01"]
    code, shown = _destroy_on_a_terminal(config, "destroy 2")
    assert code == 0, shown
    assert guests_on_host(run) == []
    assert files_on_host(config) == {"/ivm/data01/root.img": 8192}
    figures.add("data_protection", "destroy_confirmations_checked", 2)


def test_an_owned_guest_gone_from_runtime_and_configuration_is_forgotten_not_reclaimed(
    run: Any, config: Path, figures: Any
) -> None:
    """Found by the crash harness: killed after `hpvmremove` but before the state write,
    the state kept owning a guest that no longer existed, and a guest later made by hand
    under that name would have been deleted as ivmctl's own. Now apply forgets it."""
    (config / "fleet.yaml").write_text(FLEET.replace("PREVENT", "false"))
    run("apply", "--auto-approve")
    run("emulator", "exec", "vmhost01", "--", "hpvmstop", "-P", "data01", "-F")
    run("emulator", "exec", "vmhost01", "--", "hpvmremove", "-P", "data01", "-F")
    (config / "fleet.yaml").write_text(FLEET.replace(DATA01, ""))
    forgot = run("apply", "--auto-approve").stdout
    assert (
        "guest.data01: gone from the runtime and the configuration; removed from the state"
        in forgot
    )
    run("emulator", "exec", "vmhost01", "--", "hpvmcreate", "-P", "data01")
    plan = run("plan").stdout
    assert "Unmanaged, left alone: guest.data01" in plan and "No changes." in plan
    figures.add("data_protection", "vanished_records_forgotten")
