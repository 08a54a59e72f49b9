"""The plugin manager: start-up checks, providers by name, and every hook called by keyword."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pluggy
import pytest

from ivmctl import model
from ivmctl.errors import PluginError, ProviderError, RuleViolation
from ivmctl.model import DesiredState, ProviderConfig
from ivmctl.plan.model import Action, Change, Plan
from ivmctl.providers import Problem, ProviderInfo, hookimpl, manager
from ivmctl.providers.emulator import EmulatorProvider


def plugin(**hooks: Callable[..., Any]) -> SimpleNamespace:
    """A plugin object whose attributes are the given hook implementations."""
    return SimpleNamespace(**{name: hookimpl(function) for name, function in hooks.items()})


def desired(*guests: model.Guest) -> DesiredState:
    return DesiredState(guests={g.name: g for g in guests})


PLAN = Plan(changes=(Change(address="guest.web01", action=Action.RESTART, host="vmhost01"),))


# --- start-up --------------------------------------------------------------------------------
def test_the_built_in_emulator_provider_is_an_ordinary_plugin() -> None:
    pm = manager.get_plugin_manager(load_entrypoints=False)
    origins = {o.name: o for o in manager.plugin_origins(pm)}
    assert origins["emulator"].origin == "built-in"
    assert origins["emulator"].hooks == ("register_providers",)
    assert list(manager.providers(pm)) == ["emulator"]
    assert manager.providers(pm)["emulator"].plugin == "emulator"


def test_the_package_entry_point_for_the_built_in_is_not_loaded_twice() -> None:
    pm = manager.get_plugin_manager(load_entrypoints=True)
    assert [o.name for o in manager.plugin_origins(pm)].count("emulator") == 1


def test_a_misspelt_hook_fails_at_start_up_naming_plugin_and_hook() -> None:
    bad = plugin(validate_desire=lambda desired: [])
    with pytest.raises(PluginError) as info:
        manager.get_plugin_manager(load_entrypoints=False, plugins=[("speller", bad)])
    assert "'speller'" in info.value.summary and "'validate_desire'" in info.value.summary
    assert "Did you mean 'validate_desired'?" in str(info.value.detail)


def test_a_hook_with_an_unknown_argument_fails_at_start_up_naming_the_plugin() -> None:
    bad = plugin(check_plan=lambda plan, desired, extra: [])
    with pytest.raises(PluginError, match="'argued'") as info:
        manager.get_plugin_manager(load_entrypoints=False, plugins=[("argued", bad)])
    assert "check_plan" in str(info.value)


def test_a_plugin_name_used_twice_names_both() -> None:
    with pytest.raises(PluginError, match=r"two plugins are named 'emulator': 'emulator' \(built"):
        manager.get_plugin_manager(load_entrypoints=False, plugins=[("emulator", plugin())])


def test_two_providers_of_one_name_fail_naming_both_plugins() -> None:
    other = plugin(
        register_providers=lambda: [ProviderInfo(name="emulator", factory=lambda *a, **k: None)]
    )
    pm = manager.get_plugin_manager(load_entrypoints=False, plugins=[("impostor", other)])
    with pytest.raises(PluginError) as info:
        manager.providers(pm)
    message = str(info.value)
    assert "provider named 'emulator'" in message
    assert "'emulator' (built-in)" in message and "'impostor' (registered in process)" in message


def test_a_registration_that_is_not_a_provider_info_is_refused() -> None:
    odd = plugin(register_providers=lambda: ["emulator"])
    pm = manager.get_plugin_manager(load_entrypoints=False, plugins=[("odd", odd)])
    with pytest.raises(PluginError, match=r"'odd'.*not a ProviderInfo"):
        manager.providers(pm)


def test_manager_is_a_pluggy_plugin_manager_for_project_ivmctl() -> None:
    pm = manager.get_plugin_manager(load_entrypoints=False)
    assert isinstance(pm, pluggy.PluginManager) and pm.project_name == "ivmctl"


# --- providers -------------------------------------------------------------------------------
def test_register_providers_hook_returns_provider_infos() -> None:
    pm = manager.get_plugin_manager(load_entrypoints=False)
    (infos,) = pm.hook.register_providers()
    assert [info.name for info in infos] == ["emulator"]


def test_the_provider_block_picks_and_configures_the_provider(tmp_path: Path) -> None:
    pm = manager.get_plugin_manager(load_entrypoints=False)
    config = ProviderConfig(name="emulator", options={"path": "w.db", "latency": 0.1})
    provider = manager.create_provider(pm, config, config_dir=tmp_path, environ={})
    assert isinstance(provider, EmulatorProvider)
    assert provider.options.path == tmp_path / "w.db" and provider.options.latency == 0.1


def test_an_unknown_provider_name_lists_the_installed_ones(tmp_path: Path) -> None:
    pm = manager.get_plugin_manager(load_entrypoints=False)
    with pytest.raises(PluginError, match="no provider named 'ssh'") as info:
        manager.create_provider(pm, ProviderConfig(name="ssh"), config_dir=tmp_path, environ={})
    assert "Installed providers: emulator" in str(info.value.detail)


def test_bad_provider_options_surface_as_provider_errors(tmp_path: Path) -> None:
    pm = manager.get_plugin_manager(load_entrypoints=False)
    config = ProviderConfig(options={"colour": "blue"})
    with pytest.raises(ProviderError, match="'colour'"):
        manager.create_provider(pm, config, config_dir=tmp_path, environ={})


# --- policy hooks ----------------------------------------------------------------------------
def test_validate_desired_problems_name_the_plugin_that_found_them() -> None:
    def no_big_guests(desired: DesiredState) -> list[Any]:
        return [
            Problem(address=g.address, message="more than 4 vCPUs")
            for g in desired.guests.values()
            if g.vcpus > 4
        ] + [RuleViolation("as an error", detail="Do this.")]

    sizes = plugin(validate_desired=no_big_guests)
    pm = manager.get_plugin_manager(load_entrypoints=False, plugins=[("sizes", sizes)])
    state = desired(model.Guest(name="big", host="h", vcpus=8), model.Guest(name="ok", host="h"))
    assert pm.hook.validate_desired(desired=state)  # keyword call straight through pluggy
    problems = manager.validate_desired(pm, state)
    assert problems == (
        Problem(address="guest.big", message="more than 4 vCPUs", plugin="sizes"),
        Problem(address="", message="as an error Do this.", plugin="sizes"),
    )
    assert str(problems[0]) == "[sizes] guest.big: more than 4 vCPUs"


def test_check_plan_problems_block_with_one_error_listing_them_all() -> None:
    seen: list[tuple[Plan, DesiredState]] = []

    def no_restarts(plan: Plan, desired: DesiredState) -> list[Problem]:
        seen.append((plan, desired))
        return [
            Problem(address=c.address, message="restarts are frozen this week")
            for c in plan.actionable
            if c.action is Action.RESTART
        ]

    freeze = plugin(check_plan=no_restarts)
    pm = manager.get_plugin_manager(load_entrypoints=False, plugins=[("freeze", freeze)])
    assert pm.hook.check_plan(plan=PLAN, desired=desired())
    problems = manager.check_plan(pm, PLAN, desired())
    assert seen[-1] == (PLAN, desired())
    error = manager.policy_error(problems, what="the plan")
    assert isinstance(error, PluginError)
    assert error.summary == "the plan is blocked by plugin freeze: 1 policy problem"
    assert "[freeze] guest.web01: restarts are frozen this week" in str(error.detail)


def test_a_hook_may_take_fewer_arguments_than_its_specification() -> None:
    pm = manager.get_plugin_manager(
        load_entrypoints=False,
        plugins=[("lean", plugin(check_plan=lambda plan: [Problem(address="", message="x")]))],
    )
    assert manager.check_plan(pm, PLAN, desired())[0].plugin == "lean"


def test_a_policy_hook_returning_junk_is_a_plugin_error_naming_it() -> None:
    pm = manager.get_plugin_manager(
        load_entrypoints=False, plugins=[("junk", plugin(validate_desired=lambda: ["oops"]))]
    )
    with pytest.raises(PluginError, match=r"'junk'.*returned 'oops' from validate_desired"):
        manager.validate_desired(pm, desired())


# --- apply and template hooks ----------------------------------------------------------------
def test_before_and_after_apply_are_called_with_the_plan_and_result() -> None:
    calls: list[tuple[str, Any]] = []
    recorder = plugin(
        before_apply=lambda plan: calls.append(("before", plan)),
        after_apply=lambda plan, result: calls.append(("after", result)),
    )
    pm = manager.get_plugin_manager(load_entrypoints=False, plugins=[("rec", recorder)])
    pm.hook.before_apply(plan=PLAN)
    pm.hook.after_apply(plan=PLAN, result="ok")
    manager.before_apply(pm, PLAN)
    manager.after_apply(pm, PLAN, "done")
    assert calls == [("before", PLAN), ("after", "ok"), ("before", PLAN), ("after", "done")]


def test_before_apply_may_refuse_with_a_plugin_error() -> None:
    def refuse(plan: Plan) -> None:
        raise PluginError("change window closed", detail="Apply after 18:00.")

    pm = manager.get_plugin_manager(load_entrypoints=False,
                                    plugins=[("window", plugin(before_apply=refuse))])  # fmt: skip
    with pytest.raises(PluginError, match="change window closed"):
        manager.before_apply(pm, PLAN)


def test_template_filters_are_collected_from_every_plugin() -> None:
    pm = manager.get_plugin_manager(
        load_entrypoints=False,
        plugins=[
            ("a", plugin(template_filters=lambda: {"upper": str.upper})),
            ("b", plugin(template_filters=lambda: {"gb": lambda mb: mb // 1024})),
        ],
    )
    assert len(pm.hook.template_filters()) == 2
    filters = manager.template_filters(pm)
    assert list(filters) == ["gb", "upper"] and filters["gb"](4096) == 4


def test_a_template_filter_offered_twice_names_both_plugins() -> None:
    pm = manager.get_plugin_manager(
        load_entrypoints=False,
        plugins=[
            ("a", plugin(template_filters=lambda: {"upper": str.upper})),
            ("b", plugin(template_filters=lambda: {"upper": str.upper})),
        ],
    )
    with pytest.raises(PluginError, match=r"'upper': 'a' .* and 'b'"):
        manager.template_filters(pm)


def test_a_template_filter_must_be_callable() -> None:
    pm = manager.get_plugin_manager(
        load_entrypoints=False, plugins=[("a", plugin(template_filters=lambda: {"x": 3}))]
    )
    with pytest.raises(PluginError, match="'x' that is not callable"):
        manager.template_filters(pm)


def test_a_plugin_that_crashes_is_a_plugin_error_naming_it_and_the_hook() -> None:
    def broken(desired: DesiredState) -> list[Problem]:
        return [Problem(address="", message=str(desired.guests["missing"]))]

    pm = manager.get_plugin_manager(
        load_entrypoints=False, plugins=[("crashy", plugin(validate_desired=broken))]
    )
    with pytest.raises(PluginError, match=r"plugin 'crashy' .* failed in validate_desired"):
        manager.validate_desired(pm, desired())
    with pytest.raises(KeyError):  # straight through pluggy there is no such safety net
        pm.hook.validate_desired(desired=desired())
