"""Recording an apply: one journal line per change, the intent to create before a create."""

from __future__ import annotations

from pathlib import Path

import pytest

import ivmctl.state.journal as journal_module
from ivmctl import model
from ivmctl.core.recording import _Recorder, recording, settle_intents
from ivmctl.plan.model import Action, Change, Operation, OpKind
from ivmctl.state import LocalBackend, RecordStatus, ResourceRecord, State

DESIRED = model.DesiredState(
    guests={
        "web01": model.Guest(name="web01", host="h1",
                             lifecycle=model.Lifecycle(prevent_destroy=True)),
        "web02": model.Guest(name="web02", host="h1"),
    }
)  # fmt: skip


def change(address: str, action: Action, *kinds: OpKind, host: str = "h1") -> Change:
    name = address.rpartition(".")[2]
    after = None if action is Action.DELETE else {"name": name}
    before = None if action is Action.CREATE else {"name": name}
    return Change(address=address, action=action, host=host, before=before, after=after,
                  operations=tuple(Operation(kind=k, host=host, params={"name": name})
                                   for k in kinds))  # fmt: skip


CREATE = change("guest.web01", Action.CREATE, OpKind.GUEST_CREATE, OpKind.GUEST_START)


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    backend = LocalBackend(tmp_path)
    backend.write(State.new().with_record(ResourceRecord(address="guest.old", host="h1")))
    return backend


def test_an_apply_appends_to_the_journal_and_writes_state_json_once_at_the_end(
    backend: LocalBackend,
) -> None:
    state = backend.read()
    before = backend.path.read_bytes()
    with recording(backend, state, DESIRED) as recorder:
        recorder.intend(CREATE)
        recorder(CREATE)
        recorder(change("guest.old", Action.DELETE, OpKind.GUEST_DELETE))
        assert backend.path.read_bytes() == before  # nothing rewritten per change
        assert backend.read() == recorder.state
    assert not backend.journal_path.exists()
    after = backend.read()
    assert after.serial == state.serial + 3
    assert set(after.resources) == {"guest.web01"}
    assert after.resources["guest.web01"].status is RecordStatus.OWNED
    assert after.resources["guest.web01"].prevent_destroy


def test_the_intent_is_written_when_the_change_starts_and_synced_before_the_create(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_file = change("guest.web01", Action.CREATE, OpKind.FILE_CREATE, OpKind.GUEST_CREATE)
    synced_lines: list[int] = []

    def fsync(fd: int) -> None:
        synced_lines.append(len(backend.journal_path.read_bytes().splitlines()))

    with recording(backend, backend.read(), DESIRED) as recorder:
        monkeypatch.setattr(journal_module.os, "fsync", fsync)
        recorder.before_operation(with_file, with_file.operations[0])  # the backing file
        on_disk = LocalBackend(backend.directory).read().resources["guest.web01"]
        assert on_disk.status is RecordStatus.CREATING
        assert (on_disk.host, on_disk.prevent_destroy, on_disk.digest) == ("h1", True, "")
        recorder.before_operation(with_file, with_file.operations[1])  # hpvmcreate
        assert synced_lines and synced_lines[0] >= 2  # header and intent, fsynced


@pytest.mark.parametrize(
    "planned",
    [
        change("guest.web02", Action.START, OpKind.GUEST_START),
        change("guest.web02", Action.ADOPT),
        change("guest.old", Action.REPLACE, OpKind.GUEST_DELETE, OpKind.GUEST_CREATE),
    ],
    ids=["creates nothing", "adopts", "already owned"],
)
def test_no_intent_is_recorded_for_a_change_that_creates_nothing_new(
    backend: LocalBackend, planned: Change
) -> None:
    state = backend.read()
    with recording(backend, state, DESIRED) as recorder:
        recorder.intend(planned)
        assert recorder.state == state


def test_a_vswitch_about_to_be_created_is_intended_too(backend: LocalBackend) -> None:
    vswitch = change("vswitch.h1.vsw1", Action.CREATE, OpKind.VSWITCH_CREATE)
    with recording(backend, backend.read(), DESIRED) as recorder:
        recorder.intend(vswitch)
    assert backend.read().resources["vswitch.h1.vsw1"].status is RecordStatus.CREATING


def test_a_create_refused_drops_its_intent_and_one_that_timed_out_is_owned(
    backend: LocalBackend,
) -> None:
    other = change("guest.web02", Action.CREATE, OpKind.GUEST_CREATE, OpKind.GUEST_START)
    with recording(backend, backend.read(), DESIRED) as recorder:
        recorder.intend(CREATE)
        recorder.intend(other)
        recorder.partial(CREATE, ())  # hpvmcreate refused: the name may be someone else's
        recorder.partial(other, other.operations[:1])  # timed out: it may still complete
    state = backend.read()
    assert "guest.web01" not in state.owned
    assert state.resources["guest.web02"].status is RecordStatus.OWNED


def test_without_a_journal_the_recorder_keeps_the_state_for_its_caller(
    backend: LocalBackend,
) -> None:
    state = backend.read()
    recorder = _Recorder(backend, state, DESIRED)
    recorder(CREATE)
    assert recorder.state.serial == state.serial  # the caller writes it (benchmarks)
    assert backend.write(recorder.state).owned == {"guest.old", "guest.web01"}


def test_a_later_apply_owns_the_intents_it_finds_and_drops_the_others(
    backend: LocalBackend,
) -> None:
    with recording(backend, backend.read(), DESIRED) as recorder:
        recorder.intend(CREATE)
        recorder.intend(change("guest.web02", Action.CREATE, OpKind.GUEST_CREATE))
        recorder.intend(change("vswitch.h1.vsw1", Action.CREATE, OpKind.VSWITCH_CREATE))
    found = model.Guest(name="web01", host="h1")
    actual = model.ActualState(
        hosts={"h1": model.Host(name="h1", version="6.3",
                                vswitches={"vsw1": model.VSwitch(host="h1", name="vsw1")})},
        guests={"web01": model.ActualGuest(guest=found,
                                           status=model.GuestStatus(state="Off", vm_number=1))},
    )  # fmt: skip
    state = backend.read()
    settled = settle_intents(backend, state, actual)
    assert settled.serial == state.serial + 1 and backend.read() == settled
    assert {a: r.status for a, r in settled.resources.items()} == {
        "guest.old": RecordStatus.OWNED,
        "guest.web01": RecordStatus.OWNED,
        "vswitch.h1.vsw1": RecordStatus.OWNED,
    }
    assert settle_intents(backend, settled, actual) is settled  # nothing left: no write
    assert settle_intents(backend, state, None) is state  # a saved plan: no fresh view
