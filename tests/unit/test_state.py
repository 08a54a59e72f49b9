"""The local state backend: atomic writes, versions, serials and the lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ivmctl.errors import LockError, StateError
from ivmctl.state import LocalBackend, ResourceRecord, State


def test_a_missing_state_reads_as_new_and_empty(tmp_path: Path) -> None:
    state = LocalBackend(tmp_path).read()
    assert state.serial == 0 and not state.resources and state.lineage


def test_write_bumps_the_serial_and_reads_back_identically(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    state = State.new().with_record(
        ResourceRecord(address="guest.web01", host="vmhost01", prevent_destroy=True, digest="d1")
    )
    written = backend.write(state)
    assert written.serial == 1
    assert backend.read() == written


def test_a_write_based_on_an_old_serial_is_refused_so_no_update_is_lost(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    first = backend.write(State.new())
    backend.write(first.with_record(ResourceRecord(address="guest.a", host="h")))
    with pytest.raises(StateError, match="changed while this run held serial 1"):
        backend.write(first.with_record(ResourceRecord(address="guest.b", host="h")))
    assert set(backend.read().resources) == {"guest.a"}


def test_a_state_of_another_lineage_is_never_overwritten(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    backend.write(State.new())
    with pytest.raises(StateError, match="belongs to lineage"):
        backend.write(State.new())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "is corrupt"),
        (b"\xff\xfe", "is corrupt"),
        (b'{"lineage": "x"}', "has no format version"),
        (b'{"format_version": 99, "lineage": "x", "serial": 1, "resources": {}}',
         "has format version 99; this ivmctl reads up to version 2"),
        (b'{"format_version": 1, "lineage": "x", "serial": 1, "resources": []}', "is malformed"),
        (b'{"format_version": 1, "lineage": "x", "serial": Infinity, "resources": {}}',
         "is corrupt"),
        (b'{"format_version": 1, "lineage": "x", "serial": 1e400, "resources": {}}',
         "is malformed"),
    ],
)  # fmt: skip
def test_a_bad_state_file_is_refused_and_left_untouched(
    tmp_path: Path, content: bytes, message: str
) -> None:
    backend = LocalBackend(tmp_path)
    backend.path.write_bytes(content)
    with pytest.raises(StateError, match=message):
        backend.read()
    with pytest.raises(StateError):
        backend.write(State.new())
    assert backend.path.read_bytes() == content


def test_the_lock_is_exclusive_and_names_its_holder(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path, sleep=lambda _: None)
    with backend.lock(operation="apply") as held:
        with pytest.raises(LockError) as caught, backend.lock(operation="plan", timeout=0):
            pass
        assert held.id in str(caught.value.detail)
        assert "held by 'apply'" in caught.value.summary
    assert backend.holder() is None


def test_a_second_run_waits_for_the_lock_until_the_timeout(tmp_path: Path) -> None:
    now = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    backend = LocalBackend(tmp_path, clock=lambda: now[0], sleep=sleep)
    with (
        backend.lock(operation="apply"),
        pytest.raises(LockError),
        backend.lock(operation="apply", timeout=2.0),
    ):
        pass
    assert 19 <= len(slept) <= 21


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(child.stdout)
    import socket

    backend.lock_path.write_text(json.dumps({
        "id": "dead", "operation": "apply", "pid": dead_pid,
        "hostname": socket.gethostname(), "created": "2026-01-01T00:00:00+00:00",
    }))  # fmt: skip
    with backend.lock(operation="apply", timeout=0) as held:
        assert held.pid == os.getpid()


def test_force_unlock_needs_the_holders_id(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    backend.lock_path.write_text(json.dumps({
        "id": "abc", "operation": "apply", "pid": 1, "hostname": "elsewhere",
        "created": "2026-01-01T00:00:00+00:00",
    }))  # fmt: skip
    with pytest.raises(LockError, match="does not match"):
        backend.force_unlock("xyz")
    assert backend.force_unlock("abc").operation == "apply"
    assert backend.holder() is None
