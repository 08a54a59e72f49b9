"""The plugin manager: hook specifications, built-in plugins, installed plugins, checked.

`get_plugin_manager()` registers the built-in plugins (the emulator provider), loads the
`ivmctl` entry-point group and then checks everything at start-up: a hook name no
specification knows (a misspelling), an argument a hook does not have, a plugin that
fails to import, two plugins under one name. The helpers below call the hooks with
keyword arguments, one plugin at a time, so every result and every problem can name the
plugin it came from.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from ivmctl.errors import IvmctlError, PluginError
from ivmctl.model import DesiredState, ProviderConfig
from ivmctl.plan.model import Plan
from ivmctl.providers import hookspecs
from ivmctl.providers.base import Problem, Provider, ProviderInfo
from ivmctl.values import frozen

ENTRY_POINT_GROUP = "ivmctl"

# Built-in plugins: (plugin name, module). Registered before entry points, so the
# package's own entry point for the same module is recognised and skipped.
DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (("emulator", "ivmctl.providers.emulator_plugin"),)

BUILT_IN = "built-in"


@frozen
class PluginOrigin:
    """Where a registered plugin comes from, for `ivmctl providers` and error messages."""

    name: str
    origin: str  # "built-in", "<distribution> <version>", or "registered in process"
    module: str
    hooks: tuple[str, ...]
    path: str = ""  # the file the plugin's module was loaded from, when it has one


class PluginManager(pluggy.PluginManager):
    """A pluggy PluginManager that remembers where each plugin came from."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.origins: dict[str, str] = {}

    def origin_of(self, plugin_name: str) -> str:
        return self.origins.get(plugin_name, "registered in process")

    def describe(self, plugin_name: str) -> str:
        """`'name' (origin)`: how messages name a plugin."""
        return f"{plugin_name!r} ({self.origin_of(plugin_name)})"


def _register(pm: PluginManager, plugin: object, name: str, origin: str) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(
            f"plugin {name!r} ({origin}) has a hook that does not match its specification",
            detail=f"{exc} See docs/plugins.md for every hook's signature.",
        ) from None
    except ValueError as exc:
        raise PluginError(f"plugin {name!r} ({origin}) cannot be registered: {exc}") from None
    pm.origins[name] = origin


def _load_entry_points(pm: PluginManager) -> None:
    seen: dict[str, tuple[str, str]] = {}  # name -> (value, origin)
    for name, module in DEFAULT_PLUGINS:
        seen[name] = (module, BUILT_IN)
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP:
                continue
            origin = f"{dist.metadata['Name']} {dist.version}"
            if ep.name in seen:
                value, first = seen[ep.name]
                if value == ep.value:
                    continue  # the same plugin found twice (e.g. an editable install)
                raise PluginError(
                    f"two plugins are named {ep.name!r}: {value} ({first}) and "
                    f"{ep.value} ({origin})",
                    detail="Uninstall one of the two distributions.",
                )
            seen[ep.name] = (ep.value, origin)
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {ep.name!r} ({origin}) cannot be loaded: {exc}",
                    detail=f"Its entry point is {ep.value}; reinstall it or uninstall it.",
                ) from exc
            _register(pm, plugin, ep.name, origin)


def _check_pending(pm: PluginManager) -> None:
    """Every hook implementation must match a specification (pluggy's check_pending)."""
    for hook_name in sorted(vars(pm.hook)):
        caller = getattr(pm.hook, hook_name)
        if not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook:
                continue
            close = difflib.get_close_matches(hook_name, hookspecs.HOOK_NAMES, n=1)
            hint = f"Did you mean {close[0]!r}? " if close else ""
            raise PluginError(
                f"plugin {pm.describe(impl.plugin_name)} implements unknown hook {hook_name!r}",
                detail=f"{hint}Known hooks: {', '.join(hookspecs.HOOK_NAMES)}.",
            )
    pm.check_pending()


def get_plugin_manager(
    *, load_entrypoints: bool = True, plugins: Iterable[tuple[str, object]] = ()
) -> PluginManager:
    """Specs, built-in plugins, installed plugins (entry-point group `ivmctl`), checked.

    `plugins` registers extra (name, plugin) pairs in process, e.g. from tests.
    Raises PluginError naming the plugin on a misspelt hook, a hook with unknown
    arguments, a plugin that fails to load or a plugin name used twice.
    """
    pm = PluginManager()
    pm.add_hookspecs(hookspecs)
    for name, module in DEFAULT_PLUGINS:
        _register(pm, importlib.import_module(module), name, BUILT_IN)
    if load_entrypoints:
        _load_entry_points(pm)
    for name, plugin in plugins:
        if pm.has_plugin(name):
            raise PluginError(
                f"two plugins are named {name!r}: {pm.describe(name)} and one registered "
                "in process",
                detail="Register it under another name.",
            )
        _register(pm, plugin, name, "registered in process")
    _check_pending(pm)
    return pm


# --------------------------------------------------------------------------------------------
# Calling hooks, one plugin at a time
# --------------------------------------------------------------------------------------------


def _impls(pm: pluggy.PluginManager, hook: str) -> list[pluggy.HookImpl]:
    caller: pluggy.HookCaller = getattr(pm.hook, hook)
    # pluggy calls the last registered first; keep registration order for stable output.
    return list(caller.get_hookimpls())


def _describe(pm: pluggy.PluginManager, name: str) -> str:
    return pm.describe(name) if isinstance(pm, PluginManager) else repr(name)


def _call(pm: pluggy.PluginManager, impl: pluggy.HookImpl, hook: str, **kwargs: Any) -> Any:
    """Call one implementation by keyword with the arguments it declares.

    An ivmctl error a plugin raises (a refusal) passes through; anything else is a bug
    in the plugin and becomes a PluginError naming it, not a traceback.
    """
    try:
        return impl.function(**{name: kwargs[name] for name in impl.argnames})
    except IvmctlError:
        raise
    except Exception as exc:
        raise PluginError(
            f"plugin {_describe(pm, impl.plugin_name)} failed in {hook}: {exc!r}",
            detail="This is a bug in the plugin; upgrade or uninstall it "
            "(run with --debug for the traceback).",
        ) from exc


def plugin_origins(pm: pluggy.PluginManager) -> list[PluginOrigin]:
    """Every registered plugin: name, where it comes from, its module and hooks."""
    result = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        callers = pm.get_hookcallers(plugin) or []
        module = plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__
        origin = pm.origin_of(name) if isinstance(pm, PluginManager) else "registered"
        path = getattr(plugin, "__file__", None) if isinstance(plugin, ModuleType) else None
        result.append(
            PluginOrigin(
                name=name,
                origin=origin,
                module=module,
                hooks=tuple(sorted(caller.name for caller in callers)),
                path=str(path or ""),
            )
        )
    return result


def providers(pm: pluggy.PluginManager) -> dict[str, ProviderInfo]:
    """Every registered provider by name; two providers of one name name both plugins."""
    found: dict[str, ProviderInfo] = {}
    for impl in _impls(pm, "register_providers"):
        for info in _call(pm, impl, "register_providers") or ():
            if not isinstance(info, ProviderInfo):
                raise PluginError(
                    f"plugin {_describe(pm, impl.plugin_name)} registered {info!r}, "
                    "not a ProviderInfo",
                    detail="register_providers must return ProviderInfo values.",
                )
            if info.name in found:
                raise PluginError(
                    f"two plugins register a provider named {info.name!r}: "
                    f"{_describe(pm, found[info.name].plugin)} and "
                    f"{_describe(pm, impl.plugin_name)}",
                    detail="Uninstall one of them.",
                )
            found[info.name] = replace(info, plugin=impl.plugin_name)
    return dict(sorted(found.items()))


def create_provider(
    pm: pluggy.PluginManager,
    config: ProviderConfig,
    *,
    config_dir: Path,
    environ: Mapping[str, str],
) -> Provider:
    """The provider a configuration's `provider:` block asks for, built by its plugin."""
    known = providers(pm)
    info = known.get(config.name)
    if info is None:
        raise PluginError(
            f"no provider named {config.name!r} is installed",
            detail=f"Installed providers: {', '.join(known) or 'none'}. "
            "Run `ivmctl providers` to see where they come from.",
        )
    return info.factory(config.options, config_dir=config_dir, environ=environ)


def _problems(pm: pluggy.PluginManager, hook: str, **kwargs: Any) -> tuple[Problem, ...]:
    found: list[Problem] = []
    for impl in _impls(pm, hook):
        for item in _call(pm, impl, hook, **kwargs) or ():
            if isinstance(item, Problem):
                found.append(replace(item, plugin=impl.plugin_name))
            elif isinstance(item, IvmctlError):
                found.append(Problem.from_error(item, plugin=impl.plugin_name))
            else:
                raise PluginError(
                    f"plugin {_describe(pm, impl.plugin_name)} returned {item!r} from {hook}",
                    detail=f"{hook} must return Problem values or ivmctl errors.",
                )
    return tuple(found)


def validate_desired(pm: pluggy.PluginManager, desired: DesiredState) -> tuple[Problem, ...]:
    """Every policy problem the plugins find in the desired state."""
    return _problems(pm, "validate_desired", desired=desired)


def check_plan(pm: pluggy.PluginManager, plan: Plan, desired: DesiredState) -> tuple[Problem, ...]:
    """Every policy problem the plugins find in a computed plan."""
    return _problems(pm, "check_plan", plan=plan, desired=desired)


def policy_error(problems: Iterable[Problem], *, what: str) -> PluginError:
    """One PluginError listing every problem, each naming its plugin and object.

    `what` is what is blocked, e.g. "the plan" or "the configuration".
    """
    items = list(problems)
    plugins = sorted({p.plugin for p in items if p.plugin})
    by = f" by plugin {', '.join(plugins)}" if plugins else ""
    noun = "problem" if len(items) == 1 else "problems"
    return PluginError(
        f"{what} is blocked{by}: {len(items)} policy {noun}",
        detail="\n".join(f"  {p}" for p in items),
    )


def before_apply(pm: pluggy.PluginManager, plan: Plan) -> None:
    """Tell every plugin that apply is about to run `plan`; a plugin may raise to refuse."""
    for impl in _impls(pm, "before_apply"):
        _call(pm, impl, "before_apply", plan=plan)


def after_apply(pm: pluggy.PluginManager, plan: Plan, result: Any) -> None:
    """Tell every plugin what apply did."""
    for impl in _impls(pm, "after_apply"):
        _call(pm, impl, "after_apply", plan=plan, result=result)


def template_filters(pm: pluggy.PluginManager) -> dict[str, Callable[..., Any]]:
    """Every plugin's Jinja2 filters; a name offered by two plugins names both."""
    found: dict[str, Callable[..., Any]] = {}
    owner: dict[str, str] = {}
    for impl in _impls(pm, "template_filters"):
        offered = _call(pm, impl, "template_filters") or {}
        for name, function in sorted(offered.items()):
            if not callable(function):
                raise PluginError(
                    f"plugin {_describe(pm, impl.plugin_name)} offers template filter "
                    f"{name!r} that is not callable"
                )
            if name in found:
                raise PluginError(
                    f"two plugins offer the template filter {name!r}: "
                    f"{_describe(pm, owner[name])} and {_describe(pm, impl.plugin_name)}",
                    detail="Uninstall one of them.",
                )
            found[name] = function
            owner[name] = impl.plugin_name
    return dict(sorted(found.items()))
