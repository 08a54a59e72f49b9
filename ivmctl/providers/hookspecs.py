# mypy: disable-error-code="empty-body"
"""Every hook a plugin can implement, in one place (docs/plugins.md documents each).

Plugins decorate their functions with `ivmctl.providers.hookimpl`; ivmctl calls every
hook with keyword arguments only. A hook function may accept fewer arguments than the
specification lists, never others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pluggy

from ivmctl.errors import IvmctlError
from ivmctl.model import DesiredState
from ivmctl.plan.model import Plan
from ivmctl.providers.base import Problem, ProviderInfo

PROJECT = "ivmctl"  # specifications below have no body: pluggy never calls them

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_providers() -> Sequence[ProviderInfo]:
    """Return the providers this plugin offers, as ProviderInfo values."""


@hookspec
def validate_desired(desired: DesiredState) -> Sequence[Problem | IvmctlError]:
    """Return policy problems of the desired state that the schema cannot express."""


@hookspec
def check_plan(plan: Plan, desired: DesiredState) -> Sequence[Problem | IvmctlError]:
    """Return policy problems of a computed plan; any problem blocks it."""


@hookspec
def before_apply(plan: Plan) -> None:
    """Called once before apply executes a plan; raise PluginError to refuse it."""


@hookspec
def after_apply(plan: Plan, result: Any) -> None:
    """Called once after apply with the plan and its ApplyResult, also when it failed."""


@hookspec
def template_filters() -> Mapping[str, Callable[..., Any]]:
    """Return Jinja2 filters (name -> callable) for configuration templates."""


HOOK_NAMES: tuple[str, ...] = (
    "register_providers",
    "validate_desired",
    "check_plan",
    "before_apply",
    "after_apply",
    "template_filters",
)
