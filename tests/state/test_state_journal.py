"""The state journal: one appended line per recorded change, folded into state.json."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

import ivmctl.state.journal as journal_module
from ivmctl.errors import StateError
from ivmctl.state import Forget, LocalBackend, RecordStatus, ResourceRecord, State
from ivmctl.state.journal import Journal


def record(name: str, **fields: object) -> ResourceRecord:
    return ResourceRecord(address=f"guest.{name}", host="h1", **fields)  # type: ignore[arg-type]


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path)


def started(backend: LocalBackend) -> tuple[State, Journal]:
    state = backend.write(State.new().with_record(record("old")))
    return state, backend.open_journal(state)


def test_recording_appends_a_line_per_change_and_leaves_state_json_untouched(
    backend: LocalBackend,
) -> None:
    state, journal = started(backend)
    before = backend.path.read_bytes()
    for i in range(50):
        journal.append(record(f"g{i}"))
    journal.append(Forget(address="guest.old"))
    journal.close()
    assert backend.path.read_bytes() == before
    assert len(backend.journal_path.read_bytes().splitlines()) == 1 + 51
    now = backend.read()
    assert now.serial == state.serial + 51  # each line is one write
    assert sorted(now.resources) == sorted(f"guest.g{i}" for i in range(50))


def test_folding_moves_the_journal_into_state_json_without_changing_the_state(
    backend: LocalBackend,
) -> None:
    _, journal = started(backend)
    journal.append(record("a", status=RecordStatus.CREATING), durable=True)
    journal.append(record("a", digest="sha256:x"))
    journal.close()
    logical = backend.read()
    assert backend.fold() == logical
    assert not backend.journal_path.exists()
    assert backend.read() == logical
    body = json.loads(backend.path.read_text())
    assert body["format_version"] == 2
    assert body["resources"]["guest.a"] == {
        "digest": "sha256:x", "host": "h1", "prevent_destroy": False, "status": "owned"
    }  # fmt: skip


def test_a_last_line_cut_short_was_never_acknowledged_and_is_ignored(
    backend: LocalBackend,
) -> None:
    state, journal = started(backend)
    journal.append(record("a"))
    journal.close()
    with open(backend.journal_path, "ab") as handle:
        handle.write(b'{"record":{"address":"guest.b","ho')
    assert set(backend.read().resources) == {"guest.old", "guest.a"}
    assert backend.read().serial == state.serial + 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"record":{"address":"guest.b"}}\n', "is corrupt at line 3"),
        (b"\xff\xfe\n", "is corrupt at line 3"),
        (b'{"record":{"address":"guest.b","host":"h","status":"gone"}}\n', "is corrupt"),
    ],
)  # fmt: skip
def test_a_corrupt_line_refuses_the_state_and_nothing_is_overwritten(
    backend: LocalBackend, content: bytes, message: str
) -> None:
    state, journal = started(backend)
    journal.append(record("a"))
    journal.close()
    with open(backend.journal_path, "ab") as handle:
        handle.write(content + b'{"forget":"guest.a"}\n')
    files = (backend.path.read_bytes(), backend.journal_path.read_bytes())
    with pytest.raises(StateError, match=message):
        backend.read()
    with pytest.raises(StateError, match=message):
        backend.write(state)
    with pytest.raises(StateError, match=message), backend.lock(operation="apply"):
        pass
    assert (backend.path.read_bytes(), backend.journal_path.read_bytes()) == files


def test_a_journal_of_a_newer_format_is_refused_and_kept(backend: LocalBackend) -> None:
    state = backend.write(State.new())
    head = {"format_version": 99, "journal": "ivmctl state journal",
            "lineage": state.lineage, "serial": state.serial}  # fmt: skip
    backend.journal_path.write_text(json.dumps(head) + "\n")
    with pytest.raises(StateError, match="format version 99; this ivmctl reads up to version 2"):
        backend.read()
    with pytest.raises(StateError):
        backend.fold()
    assert backend.journal_path.exists()


def test_a_journal_that_state_json_has_moved_past_is_stale_and_ignored(
    backend: LocalBackend,
) -> None:
    _, journal = started(backend)
    journal.append(record("a"))
    journal.close()
    stale = backend.journal_path.read_bytes()
    folded = backend.fold()
    # A fold killed after writing state.json but before removing the journal.
    backend.journal_path.write_bytes(stale)
    assert backend.read() == folded
    assert backend.fold() == folded
    assert not backend.journal_path.exists()


def test_the_lock_folds_the_journal_a_dead_run_left(backend: LocalBackend) -> None:
    _, journal = started(backend)
    journal.append(record("a", status=RecordStatus.CREATING), durable=True)
    journal.close()  # the run dies here: nothing folds it
    logical = backend.read()
    with backend.lock(operation="apply"):
        assert not backend.journal_path.exists()
        assert backend.read() == logical
    assert json.loads(backend.path.read_text())["resources"]["guest.a"]["status"] == "creating"


def test_a_write_after_a_journal_continues_its_serial_and_removes_it(
    backend: LocalBackend,
) -> None:
    state, journal = started(backend)
    journal.append(record("a"))
    journal.close()
    current = backend.read()
    with pytest.raises(StateError, match="changed while this run held serial"):
        backend.write(state)  # the journal moved the state on
    written = backend.write(current.without("guest.a"))
    assert written.serial == state.serial + 2
    assert not backend.journal_path.exists()
    assert backend.read() == written


def test_a_format_1_state_is_read_and_upgraded_before_a_journal_continues_it(
    backend: LocalBackend,
) -> None:
    backend.directory.mkdir(parents=True, exist_ok=True)
    body = {"format_version": 1, "lineage": "L", "serial": 7, "resources": {
        "guest.web01": {"digest": "d", "host": "h1", "prevent_destroy": True}}}  # fmt: skip
    backend.path.write_text(json.dumps(body, indent=2))
    state = backend.read()
    assert state.resources["guest.web01"].status is RecordStatus.OWNED
    backend.open_journal(state).close()
    upgraded = json.loads(backend.path.read_text())
    assert (upgraded["format_version"], upgraded["serial"]) == (2, 7)
    assert upgraded["resources"]["guest.web01"]["status"] == "owned"


def test_a_journal_of_a_new_directory_has_a_state_json_naming_its_lineage(
    backend: LocalBackend,
) -> None:
    state = backend.read()  # no file: a new state whose lineage nobody knows yet
    journal = backend.open_journal(state)
    journal.append(record("a"), durable=True)
    journal.close()
    now = backend.read()
    assert now.lineage == state.lineage and now.serial == 1
    assert "guest.a" in now.owned


def test_a_durable_line_is_synced_before_append_returns_with_the_lines_before_it(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = backend.write(State.new())
    journal = Journal.create(backend.journal_path, state, sync_interval=3600)
    synced: list[int] = []
    monkeypatch.setattr(journal_module.os, "fsync", lambda fd: synced.append(fd))
    journal.append(record("a"))
    journal.append(record("b"))
    assert synced == []  # on disk for a killed process; the fsync may wait a moment
    journal.append(record("c", status=RecordStatus.CREATING), durable=True)
    assert len(synced) == 1  # one fsync covers the intent and the lines before it
    journal.append(record("d"))
    journal.close()
    assert len(synced) == 2


def test_other_lines_are_synced_by_a_timer_without_waiting_for_another_append(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = backend.write(State.new())
    journal = Journal.create(backend.journal_path, state, sync_interval=0.01)
    synced = threading.Event()
    monkeypatch.setattr(journal_module.os, "fsync", lambda fd: synced.set())
    journal.append(record("a"))
    assert synced.wait(timeout=30)
    journal.close()


def test_concurrent_durable_appends_all_land_as_whole_lines(backend: LocalBackend) -> None:
    state = backend.write(State.new())
    journal = backend.open_journal(state)

    def worker(t: int) -> None:
        for i in range(40):
            journal.append(record(f"t{t}x{i}", status=RecordStatus.CREATING), durable=True)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    journal.close()
    now = backend.read()
    assert len(now.resources) == 320 and now.serial == state.serial + 320
