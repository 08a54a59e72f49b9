"""The emulator provider against recorded outputs: options, refresh, provisioning, execution."""

from __future__ import annotations

import os
import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ivmctl import model
from ivmctl.errors import ProviderError
from ivmctl.plan.model import Operation, OpKind
from ivmctl.providers import hpvm
from ivmctl.providers.base import Provider, Step
from ivmctl.providers.emulator import (
    EmulatorOptions,
    EmulatorProvider,
    create_provider,
    emulator_options,
)
from ivmctl.providers.hpvm import PIPELINE, HpvmProvider
from ivmctl.providers.parsed_hosts import ENTRY, FORMAT, ParsedHosts
from ivmctl.providers.transport import CommandOutput, EmulatorTransport
from ivmctl.runtime import World


def provider_for(world: Any, *, latency: float = 0.0, sleeps: list[float] | None = None) -> Any:
    slept = sleeps if sleeps is not None else []
    transport = EmulatorTransport(lambda: world, latency=latency, sleep=slept.append)
    return EmulatorProvider(EmulatorOptions(path=Path("unused.db")), transport=transport)


# --- options ---------------------------------------------------------------------------------
OPTION_CASES = [
    ({}, {}, EmulatorOptions(path=Path("/cfg/.ivmctl/emulator.db"))),
    ({"path": "worlds/lab.db", "latency": 0.5}, {},
     EmulatorOptions(path=Path("/cfg/worlds/lab.db"), latency=0.5)),
    ({"path": "/abs/w.db"}, {}, EmulatorOptions(path=Path("/abs/w.db"))),
    ({"path": "w.db", "latency": 1}, {"IVMCTL_EMULATOR": "env.db",
                                      "IVMCTL_EMULATOR_LATENCY": "0.25"},
     EmulatorOptions(path=Path("env.db"), latency=0.25)),
    ({"processes": 0}, {}, EmulatorOptions(path=Path("/cfg/.ivmctl/emulator.db"), processes=0)),
    ({"processes": 0}, {"IVMCTL_EMULATOR_PROCESSES": "2"},
     EmulatorOptions(path=Path("/cfg/.ivmctl/emulator.db"), processes=2)),
]  # fmt: skip


OPTION_IDS = ["defaults", "provider block", "absolute path", "environment", "processes",
              "processes from the environment"]  # fmt: skip


@pytest.mark.parametrize(("options", "environ", "expected"), OPTION_CASES, ids=OPTION_IDS)
def test_emulator_options_come_from_the_provider_block_then_the_environment(
    options: dict[str, Any], environ: dict[str, str], expected: EmulatorOptions
) -> None:
    assert emulator_options(options, config_dir=Path("/cfg"), environ=environ) == expected


@pytest.mark.parametrize(
    ("options", "environ", "message"),
    [
        ({"pth": "x.db"}, {}, "unknown emulator provider option 'pth'"),
        ({"latency": -1}, {}, "latency -1 from provider.latency"),
        ({"latency": "slow"}, {}, "latency 'slow'"),
        ({"latency": True}, {}, "latency True"),
        ({}, {"IVMCTL_EMULATOR_LATENCY": "nan"}, "IVMCTL_EMULATOR_LATENCY"),
        ({"path": 3}, {}, "path 3 is not a file name"),
        ({"processes": -1}, {}, "processes -1 from provider.processes is not a number"),
        ({"processes": "two"}, {}, "processes 'two'"),
        ({"processes": True}, {}, "processes True"),
        ({}, {"IVMCTL_EMULATOR_PROCESSES": "-3"}, "from IVMCTL_EMULATOR_PROCESSES"),
    ],
    ids=[
        "misspelt option",
        "negative",
        "not a number",
        "bool",
        "nan from env",
        "bad path",
        "negative processes",
        "processes not a number",
        "processes bool",
        "processes from env",
    ],
)
def test_bad_emulator_options_are_provider_errors(
    options: dict[str, Any], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ProviderError, match=message):
        emulator_options(options, config_dir=Path("/cfg"), environ=environ)


def test_building_the_provider_opens_no_world(tmp_path: Path) -> None:
    provider = create_provider({}, config_dir=tmp_path, environ={})
    assert isinstance(provider, Provider)
    assert provider.capabilities.can_provision_hosts
    assert "entitlement" in provider.capabilities.online_fields
    assert not (tmp_path / ".ivmctl").exists()


# --- refresh ---------------------------------------------------------------------------------
def test_refresh_builds_the_actual_state_from_recorded_outputs(world: Any) -> None:
    state = provider_for(world).refresh(["vmhost01", "ghost"])
    assert set(state.hosts) == {"vmhost01"}  # an unknown host is simply absent
    host = state.hosts["vmhost01"]
    assert host.version == "6.3"
    assert host.hardware == model.Hardware(cores=8, memory_mb=65536, nics=("lan0", "lan1"),
                                           mhz=1600)  # fmt: skip
    assert host.vswitches == {
        "vswlab": model.VSwitch(host="vmhost01", name="vswlab", nic=None, state="Down"),
        "vswprod": model.VSwitch(host="vmhost01", name="vswprod", nic="lan0", state="Up",
                                 port_vlans={4: 20, 7: 30}),
    }  # fmt: skip
    assert list(state.guests) == ["db01", "web01"]
    assert list(state.not_runnable) == [("vmhost01", "app01")]
    assert state.generation == "7"


def test_refresh_reads_vlans_shares_and_power(world: Any) -> None:
    state = provider_for(world).refresh(["vmhost01"])
    web = state.guests["web01"].guest
    assert web.power == "on" and web.nics[0].vlan == 20 and web.nics[0].port == 4
    assert web.dvds[0].path == "/iso/hpux.iso"
    db = state.guests["db01"].guest
    assert db.power == "off" and db.start == "manual"
    assert db.disks[0].shared is True and db.disks[0].adapter == "scsi"
    assert db.nics[0].vswitch == "localnet" and db.nics[0].vlan is None
    assert state.guests["db01"].status.state == "Off"


def test_refresh_reads_a_host_in_two_round_trips_whatever_its_guests(world: Any) -> None:
    provider_for(world).refresh(["vmhost01"])
    commands = [" ".join(argv) for _, argv in world.log]
    assert sorted(commands) == sorted(
        ["hpvmstatus -s", "hpvmnet", "hpvmnet -S localnet", "hpvmnet -S vswprod",
         "hpvmnet -S vswlab", "hpvmdevmgmt -l all", "hpvmstatus -M", "hpvmstatus -X"]
    )  # fmt: skip
    # the listings, then the port tables of the vswitches the first listing named
    batches = [[" ".join(argv) for argv in lines] for _, lines in world.batches]
    assert batches == [
        ["hpvmstatus -s", "hpvmnet", "hpvmdevmgmt -l all", "hpvmstatus -M", "hpvmstatus -X"],
        ["hpvmnet -S localnet", "hpvmnet -S vswprod", "hpvmnet -S vswlab"],
    ]


def test_a_guest_runnable_on_two_hosts_is_a_provider_error(world: Any) -> None:
    second = replace(world.hosts_[0], name="vmhost02")
    world.hosts_.append(second)
    for (_host, argv), result in list(world.outputs.items()):
        world.outputs[("vmhost02", argv)] = result
    with pytest.raises(ProviderError, match="runnable on two hosts, vmhost01 and vmhost02"):
        provider_for(world).refresh(["vmhost01", "vmhost02"])


def test_a_host_that_does_not_answer_is_recorded_with_its_words(world: Any) -> None:
    result_type = type(next(iter(world.outputs.values())))
    world.outputs[("vmhost01", ("hpvmstatus", "-M"))] = result_type(
        255, "", "ssh: connect to host vmhost01 port 22: Connection refused"
    )
    actual = provider_for(world).refresh(["vmhost01"])
    assert "vmhost01" not in actual.hosts and not actual.guests
    said = actual.unreachable["vmhost01"]
    assert "hpvmstatus -M exited with 255 after 3 tries" in said
    assert "Connection refused" in said


def test_a_listing_the_host_refuses_is_a_provider_error_with_its_words(world: Any) -> None:
    result_type = type(next(iter(world.outputs.values())))
    world.outputs[("vmhost01", ("hpvmstatus", "-M"))] = result_type(1, "", "hpvmstatus: boom")
    with pytest.raises(ProviderError, match="hpvmstatus -M exited with 1") as info:
        provider_for(world).refresh(["vmhost01"])
    assert "boom" in str(info.value)


def test_read_guest_rereads_one_guest(world: Any) -> None:
    provider = provider_for(world)
    web = provider.read_guest("vmhost01", "web01")
    assert web == provider.refresh(["vmhost01"]).guests["web01"]
    assert provider.read_guest("vmhost01", "nosuch") is None


def test_read_guest_takes_two_round_trips(world: Any) -> None:
    provider_for(world).read_guest("vmhost01", "web01")
    batches = [[" ".join(argv) for argv in lines] for _, lines in world.batches]
    assert batches == [
        ["hpvmstatus -M", "hpvmdevmgmt -l all", "hpvmstatus -d -P web01"],
        ["hpvmnet -S vswprod"],  # the vswitches its NICs are on
    ]


# --- hosts -----------------------------------------------------------------------------------
def declared(name: str, **hardware: Any) -> model.Host:
    base: dict[str, Any] = {"cores": 8, "memory_mb": 65536, "nics": ("lan0", "lan1")}
    return model.Host(name=name, version="6.3", hardware=model.Hardware(**{**base, **hardware}))


def test_ensure_host_provisions_a_missing_host_with_its_declared_hardware(world: Any) -> None:
    provider_for(world).ensure_host(declared("vmhost09", cores=4, mhz=1800))
    added = world.hosts_[-1]
    assert (added.name, added.cores, added.memory_mb, added.nics, added.mhz, added.version) == (
        "vmhost09",
        4,
        65536,
        ("lan0", "lan1"),
        1800,
        "6.3",
    )


def test_ensure_host_accepts_an_existing_host_with_the_same_hardware(world: Any) -> None:
    provider_for(world).ensure_host(declared("vmhost01"))
    assert len(world.hosts_) == 1


@pytest.mark.parametrize(
    ("host", "message"),
    [
        (declared("vmhost01", cores=16), "8 cores, declared 16"),
        (declared("vmhost01", memory_mb=1024), "65536 MB of memory, declared 1024"),
        (declared("vmhost01", nics=("lan0",)), "NICs lan0, lan1, declared lan0"),
        (declared("vmhost01", mhz=1800), "1600 MHz, declared 1800"),
        (model.Host(name="vmhost01", version="4.3"), "Integrity VM 6.3, declared 4.3"),
    ],
    ids=["cores", "memory", "nics", "clock", "version"],
)
def test_a_host_whose_hardware_differs_is_a_provider_error(
    world: Any, host: model.Host, message: str
) -> None:
    with pytest.raises(ProviderError, match=message) as info:
        provider_for(world).ensure_host(host)
    assert "cannot be changed by software" in str(info.value)


def test_a_missing_host_without_hardware_cannot_be_provisioned(world: Any) -> None:
    with pytest.raises(ProviderError, match="declares no hardware"):
        provider_for(world).ensure_host(model.Host(name="vmhost09", version="6.3"))


# --- steps and execution ---------------------------------------------------------------------
def test_execute_runs_the_argument_list_through_the_transport(world: Any) -> None:
    sleeps: list[float] = []
    provider = provider_for(world, latency=0.5, sleeps=sleeps)
    (step,) = provider.steps(Operation(kind=OpKind.GUEST_START, host="vmhost01",
                                       params={"name": "web01"}))  # fmt: skip
    result = provider.execute(step)
    assert world.log[-1] == ("vmhost01", ("hpvmstart", "-P", "web01"))
    assert result.ok and result.step == step and result.duration >= 0
    assert sleeps == [0.5]


def test_a_failed_command_is_a_result_not_an_exception(world: Any) -> None:
    result_type = type(next(iter(world.outputs.values())))
    argv = ("hpvmstart", "-P", "db01")
    world.outputs[("vmhost01", argv)] = result_type(
        1, "", "hpvmstart: ERROR (db01): Insufficient memory\n"
    )
    result = provider_for(world).execute(Step(host="vmhost01", argv=argv, description="start"))
    assert not result.ok and result.exit_code == 1
    assert result.output == "hpvmstart: ERROR (db01): Insufficient memory"


def test_generation_and_close(world: Any) -> None:
    provider = provider_for(world)
    assert provider.generation() == "7"
    provider.ensure_host(declared("vmhost09"))
    assert provider.generation() == "8"
    provider.close()
    assert world.closed


# --- host.provision --------------------------------------------------------------------------
def provision(name: str = "vmhost09", **params: Any) -> Operation:
    base: dict[str, Any] = {"name": name, "version": "6.3", "cores": 4, "memory_mb": 32768,
                            "nics": ["lan0", "lan1"], "mhz": None}  # fmt: skip
    return Operation(kind=OpKind.HOST_PROVISION, host=name, params={**base, **params})


def test_host_provision_is_shown_as_the_emulator_cli_command(world: Any) -> None:
    (step,) = provider_for(world).steps(provision(mhz=1800))
    assert step.host == "vmhost09"
    assert step.command_line == (
        "ivmctl emulator host add vmhost09 --cores 4 --memory 32G --nics lan0,lan1 "
        "--version 6.3 --mhz 1800"
    )


def test_executing_host_provision_provisions_the_host(world: Any) -> None:
    provider = provider_for(world)
    (step,) = provider.steps(provision())
    result = provider.execute(step)
    assert result.ok and result.output == "host vmhost09 provisioned"
    added = world.hosts_[-1]
    assert (added.name, added.cores, added.memory_mb, added.nics) == (
        "vmhost09",
        4,
        32768,
        ("lan0", "lan1"),
    )
    assert world.log == []  # no hpvm* command ran for it


def test_host_provision_of_an_existing_host_checks_its_hardware(world: Any) -> None:
    provider = provider_for(world)
    (same,) = provider.steps(provision("vmhost01", cores=8, memory_mb=65536, mhz=1600))
    assert provider.execute(same).output == "host vmhost01 already has the declared hardware"
    (other,) = provider.steps(provision("vmhost01", cores=16, memory_mb=65536))
    result = provider.execute(other)
    assert not result.ok and "8 cores, declared 16" in result.output


def test_host_provision_with_missing_parameters_is_a_provider_error(world: Any) -> None:
    bad = Operation(kind=OpKind.HOST_PROVISION, host="h", params={"name": "h"})
    with pytest.raises(ProviderError, match=r"host\.provision on h"):
        provider_for(world).steps(bad)


def test_a_provider_that_cannot_provision_refuses_host_provision(world: Any) -> None:
    plain = HpvmProvider(EmulatorTransport(lambda: world))
    assert not plain.capabilities.can_provision_hosts
    with pytest.raises(ProviderError, match="cannot provision host vmhost09"):
        plain.steps(provision())
    assert plain.host_facts("vmhost01") == provider_for(world).host_facts("vmhost01")


def test_provisions_and_a_refresh_never_list_the_worlds_hosts_once_per_host(
    tmp_path: Path,
) -> None:
    """Each provision changes the generation, so a listing per provision cost N² rows at
    1,000 hosts; a refresh asks about every host at one generation."""
    from ivmctl.providers.emulator import create_provider

    made = create_provider({"path": "world.db"}, config_dir=tmp_path, environ={})
    world = made.emulator.world
    listed: list[int] = []
    original = world.hosts

    def counting_hosts() -> Any:
        listed.append(1)
        return original()

    world.hosts = counting_hosts  # type: ignore[method-assign]
    hardware = model.Hardware(cores=2, memory_mb=4096, nics=("lan0",))
    names = [f"h{i:02d}" for i in range(12)]
    for name in names:
        made.ensure_host(model.Host(name=name, version="6.3", hardware=hardware))
        assert made.has_host(name) and not made.has_host(f"{name}x")
    assert not listed
    actual = made.refresh(names)
    assert sorted(actual.hosts) == names
    assert len(listed) <= 1


def test_the_emulator_reads_hosts_one_at_a_time_unless_it_simulates_waiting(
    tmp_path: Path,
) -> None:
    world_path = tmp_path / "w.db"
    with World.open(world_path) as world:
        world.add_host(name="vmhost01", cores=4, memory_mb=16384)
    provider = EmulatorProvider(EmulatorOptions(path=world_path))
    try:
        assert provider.refresh_parallelism() == 1  # in-process reads are CPU work
        provider.emulator.world.set_faults("vmhost01", latency={"hpvmstatus": 0.01})
        assert provider.refresh_parallelism() > 1  # waiting overlaps
    finally:
        provider.close()
    slow = EmulatorProvider(EmulatorOptions(path=world_path, latency=0.01))
    try:
        slow.emulator.world.set_faults("vmhost01", clear=True)
        assert slow.refresh_parallelism() > 1
    finally:
        slow.close()


class _AnswersLater:
    """A transport that answers from the recorded world, but only when asked for the
    outputs; it logs when each batch was asked for and when it was collected."""

    def __init__(self, world: Any) -> None:
        self.world = world
        self.events: list[tuple[str, str]] = []

    def run(self, host: str, argv: Any) -> Any:
        return self.submit_many(host, [argv])()[0]

    def submit_many(self, host: str, argvs: Any) -> Any:
        self.events.append(("ask", host))

        def outputs() -> list[CommandOutput]:
            self.events.append(("collect", host))
            empty = {("hpvmstatus", "-M"): "", ("hpvmstatus", "-X"): "<pman/>"}
            return [
                CommandOutput(
                    exit_code=r.exit_code,
                    stdout=empty.get(tuple(argv), r.stdout) if host != "h00" else r.stdout,
                    stderr=r.stderr,
                )
                for argv, r in zip(argvs, self.world.execute_many("vmhost01", argvs), strict=True)
            ]

        return outputs

    def close(self) -> None:
        pass


def test_hosts_read_in_one_thread_have_their_next_listings_asked_for_ahead(
    world: Any,
) -> None:
    transport = _AnswersLater(world)
    names = [f"h{i:02d}" for i in range(12)]
    provider = HpvmProvider(transport)
    provider.refresh_parallelism = lambda: 1  # type: ignore[method-assign]
    state = provider.refresh(names)
    assert set(state.hosts) == set(names)
    first_collect = transport.events.index(("collect", "h00"))
    asked_before = [h for what, h in transport.events[:first_collect] if what == "ask"]
    assert asked_before == names[: PIPELINE + 1]  # this host and the next PIPELINE
    assert transport.events.count(("ask", "h11")) == 2  # its listings, then its port tables


# --- parsed listings reused only while a host answers exactly the same ---------------------
class Parses:
    """Counts the hosts parsed (rather than taken from the cache)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hosts: list[str] = []
        parse = hpvm._HostListings.parse

        def counting(name: str, texts: Any) -> Any:
            self.hosts.append(name)
            return parse(name, texts)

        monkeypatch.setattr(hpvm._HostListings, "parse", staticmethod(counting))


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Parses:
    return Parses(monkeypatch)


def cached_provider(world: Any, cache_dir: Path) -> Any:
    provider = provider_for(world)
    provider.use_cache(cache_dir)
    return provider


def test_a_host_that_answers_the_same_is_not_parsed_again(
    world: Any, tmp_path: Path, parses: Parses
) -> None:
    before = cached_provider(world, tmp_path).refresh(["vmhost01"])
    assert parses.hosts == ["vmhost01"] and (tmp_path / ENTRY).exists()
    after = cached_provider(world, tmp_path).refresh(["vmhost01"])  # a new process: the file
    assert parses.hosts == ["vmhost01"]
    assert after == before
    assert len(world.batches) == 4, "the listings are read every time; only parsing is saved"


def _edit(world: Any, argv: tuple[str, ...], old: str, new: str) -> None:
    key = ("vmhost01", argv)
    assert old in world.outputs[key].stdout
    world.outputs[key] = replace(
        world.outputs[key], stdout=world.outputs[key].stdout.replace(old, new)
    )


@pytest.mark.parametrize(
    ("argv", "old", "new", "check"),
    [
        (("hpvmnet", "-S", "vswprod"), " 20 ", " 21 ",
         lambda state: state.guests["web01"].guest.nics[0].vlan == 21),
        (("hpvmstatus", "-M"), "web front end", "web front",
         lambda state: state.guests["web01"].guest.label == "web front"),
    ],
    ids=["a port table (the second round trip)", "a first listing"],
)  # fmt: skip
def test_one_byte_of_difference_parses_the_host_again(
    world: Any, tmp_path: Path, parses: Parses, argv: tuple[str, ...], old: str, new: str,
    check: Any,
) -> None:  # fmt: skip
    cached_provider(world, tmp_path).refresh(["vmhost01"])
    _edit(world, argv, old, new)
    state = cached_provider(world, tmp_path).refresh(["vmhost01"])
    assert parses.hosts == ["vmhost01", "vmhost01"]
    assert check(state)
    assert cached_provider(world, tmp_path).refresh(["vmhost01"]) == state  # stored again
    assert parses.hosts == ["vmhost01", "vmhost01"]


def test_without_a_cache_every_refresh_parses(world: Any, parses: Parses) -> None:
    provider = provider_for(world)
    provider.refresh(["vmhost01"])
    provider.refresh(["vmhost01"])
    assert parses.hosts == ["vmhost01", "vmhost01"]


class _Planted:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("touch planted",))


@pytest.mark.parametrize(
    "content",
    [
        b"not a cache",
        FORMAT + b"\x80\x05truncated",
        FORMAT + pickle.dumps({"vmhost01": (b"f", b"k", b"v")}),
        FORMAT + pickle.dumps(_Planted()),
        FORMAT + pickle.dumps({"vmhost01": (b"f", b"any", pickle.dumps(_Planted()))}),
    ],
    ids=["foreign", "truncated", "wrong key", "planted file", "planted entry"],
)
def test_a_damaged_or_planted_cache_is_a_miss_and_runs_nothing(
    world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parses: Parses, content: bytes
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ENTRY).write_bytes(content)
    state = cached_provider(world, tmp_path).refresh(["vmhost01"])
    assert parses.hosts == ["vmhost01"]
    assert list(state.guests) == ["db01", "web01"]
    assert not (tmp_path / "planted").exists()


def test_a_planted_entry_under_the_right_key_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even an entry whose key matches builds nothing but the model's classes."""
    monkeypatch.chdir(tmp_path)
    cache = ParsedHosts(tmp_path / ENTRY)
    cache._load()["vmhost01"] = (b"first", b"key", pickle.dumps(_Planted()))
    assert cache.get("vmhost01", b"key") is None
    assert not (tmp_path / "planted").exists()
