"""Export round trip on the real emulator: for a random applied world, `export` writes a
configuration that validates, plans only adoptions without a field change in a directory
where ivmctl owns nothing, and after applying those adoptions (which runs no command)
plans no change at all."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from emulator_worlds import PM, World, configurations, worlds, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivmctl.core.inventory import export_config
from ivmctl.core.session import Session, Workspace
from ivmctl.errors import PlanError
from ivmctl.plan.model import Action


@st.composite
def applied_worlds(draw: st.DrawFn) -> tuple[World, dict[str, Any]]:
    world = draw(worlds())
    return world, draw(configurations(world))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(applied_worlds())
def test_an_export_of_any_applied_world_plans_only_adoptions_then_nothing(
    scenario: tuple[World, dict[str, Any]],
) -> None:
    _, document = scenario
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "source", Path(tmp) / "target"
        source.mkdir()
        target.mkdir()
        write_config(source, document)
        with Session(Workspace(config_dir=source, environ={}), plugin_manager=PM) as session:
            try:
                planned = session.plan()
            except PlanError:
                return  # nothing to export from a world that could not be built
            assert session.apply(planned, parallelism=1).ok
            exported = export_config(session)
            generation = session.provider(planned.desired.provider).generation()
        (target / "ivmctl.yaml").write_text(exported.text, encoding="utf-8")
        with Session(Workspace(config_dir=target, environ={}), plugin_manager=PM) as session:
            planned = session.plan()
            assert sorted(planned.desired.guests) == sorted(document["guests"])
            for change in planned.plan.actionable:
                assert change.action is Action.ADOPT, (change.address, change.action)
                assert change.fields == (), (change.address, change.fields)
                assert change.operations == ()
            assert session.apply(planned, parallelism=1).ok
            assert session.plan().plan.actionable == ()
            assert session.provider(planned.desired.provider).generation() == generation
