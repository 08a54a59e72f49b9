"""Properties: any valid guest the provider creates in the emulator reads back as declared."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivmctl import model
from ivmctl.plan.model import Operation, OpKind
from ivmctl.providers.emulator import EmulatorProvider, create_provider
from ivmctl.rules import LABEL_RE

HARDWARE = model.Hardware(cores=32, memory_mb=512 * 1024, nics=("lan0",))
_names = itertools.count()


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> EmulatorProvider:
    config_dir: Path = tmp_path_factory.mktemp("props")
    made = create_provider({"path": "world.db"}, config_dir=config_dir, environ={})
    made.ensure_host(model.Host(name="vmhost01", version="6.3", hardware=HARDWARE))
    return made


@st.composite
def guests(draw: st.DrawFn) -> model.Guest:
    ent_min = draw(st.integers(min_value=5, max_value=1000)) / 10
    ent_max = draw(st.integers(min_value=int(ent_min * 10), max_value=1000)) / 10
    memory_mb = 64 * draw(st.integers(min_value=8, max_value=4096))
    dynamic = None
    os_type = draw(st.sampled_from(["hpux", "linux", "windows", "openvms", "unknown"]))
    if os_type == "hpux" and memory_mb > 512 and draw(st.booleans()):
        # ram_dyn_min must be strictly below ram_dyn_max (rules.dynamic_memory_problem)
        low = 64 * draw(st.integers(min_value=8, max_value=memory_mb // 64 - 1))
        target = 64 * draw(st.integers(min_value=low // 64, max_value=memory_mb // 64))
        dynamic = model.DynamicMemory(min_mb=low, max_mb=memory_mb, target_mb=target)
    label = draw(st.from_regex(LABEL_RE, fullmatch=True).filter(lambda s: len(s) <= 40))
    return model.Guest(
        name=f"g{next(_names)}",
        host="vmhost01",
        os=os_type,
        vcpus=draw(st.integers(min_value=1, max_value=32)),
        entitlement=model.Entitlement(min_pct=ent_min, max_pct=ent_max),
        memory_mb=memory_mb,
        dynamic_memory=dynamic,
        power="off",
        start=draw(st.sampled_from(["auto", "manual"])),
        label=label.strip(),
        online_migration=draw(st.booleans()),
    )


def create(guest: model.Guest) -> Operation:
    dyn = guest.dynamic_memory
    return Operation(
        kind=OpKind.GUEST_CREATE,
        host=guest.host,
        params={
            "name": guest.name, "os": guest.os, "vcpus": guest.vcpus,
            "entitlement": {"min": guest.entitlement.min_pct, "max": guest.entitlement.max_pct},
            "memory_mb": guest.memory_mb, "start": guest.start, "label": guest.label,
            "dynamic_memory": None if dyn is None else
            {"min_mb": dyn.min_mb, "max_mb": dyn.max_mb, "target_mb": dyn.target_mb},
            "online_migration": guest.online_migration, "devices": [],
        },
    )  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(declared=guests())
def test_any_valid_guest_reads_back_exactly_as_created(
    provider: EmulatorProvider, declared: model.Guest
) -> None:
    for step in provider.steps(create(declared)):
        result = provider.execute(step)
        assert result.ok, f"{step.command_line}: {result.output}"
    actual = provider.read_guest("vmhost01", declared.name)
    assert actual is not None
    assert actual.guest == declared
