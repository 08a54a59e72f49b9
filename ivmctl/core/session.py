"""One run of ivmctl against one configuration directory: load, refresh, plan, apply.

A Session owns the plugin manager, the provider and the state backend for the run.
`plan()` loads the configuration, refreshes what the provider sees, asks the pure
planner for a Plan and lets policy plugins check it. `apply()` takes the state lock,
refuses a plan that went stale, walks the plan and records ownership as each change
completes. Hosts the provider can provision (the emulator) but does not have yet are
planned as `host.NAME` creations; everything else comes from the planner.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import field, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ivmctl import model
from ivmctl.collector import keep_until_exit
from ivmctl.core.recording import ProviderExecutor, _Recorder, recording, settle_intents
from ivmctl.core.recording import view_digest as view_digest  # re-exported: drift, inventory
from ivmctl.errors import IvmctlError, PlanFileError, ProviderError, StalePlanError
from ivmctl.plan.model import Action, Change, Inventory, Operation, OpKind, Plan
from ivmctl.runtime.crashpoints import crash_point
from ivmctl.state import LocalBackend, State
from ivmctl.values import frozen

if TYPE_CHECKING:
    from ivmctl.core.apply import ApplyEvent, ApplyResult

STATE_DIR = ".ivmctl"


@frozen
class Workspace:
    """Where a run reads its configuration and keeps its state, and its inputs."""

    config_dir: Path
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    variables: Mapping[str, str] = field(default_factory=dict)
    var_files: tuple[Path, ...] = ()

    @property
    def state_dir(self) -> Path:
        return self.config_dir / STATE_DIR

    @property
    def cache_dir(self) -> Path:
        return self.state_dir / "cache"


@frozen
class PlanOptions:
    """How to plan: the CLI's plan flags."""

    allow_restart: frozenset[str] = frozenset()
    targets: frozenset[str] = frozenset()
    refresh_only: bool = False
    destroy: bool = False  # plan the deletion of everything owned


@frozen
class Planned:
    """A plan and what it was computed from."""

    plan: Plan
    desired: model.DesiredState
    state: State
    actual: model.ActualState | None = None  # None for a plan read from a file
    warnings: tuple[str, ...] = ()


def _provision_operation(host: model.Host) -> Operation:
    hw = host.hardware
    assert hw is not None
    return Operation(
        kind=OpKind.HOST_PROVISION,
        host=host.name,
        params={
            "name": host.name,
            "version": host.version,
            "cores": hw.cores,
            "memory_mb": hw.memory_mb,
            "nics": list(hw.nics),
            "mhz": hw.mhz,
        },
    )


class Session:
    """Everything one command needs: plugins, provider, state. Use as a context manager."""

    def __init__(self, workspace: Workspace, *, plugin_manager: Any = None) -> None:
        from ivmctl.providers.manager import get_plugin_manager

        self.workspace = workspace
        self.pm = plugin_manager if plugin_manager is not None else get_plugin_manager()
        self.backend = LocalBackend(
            workspace.state_dir,
            before_replace=lambda: crash_point("state write: new file written, not yet renamed"),
        )
        self._provider: Any = None
        self._provider_config: model.ProviderConfig | None = None
        self._locked = False

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._provider is not None:
            self._provider.close()
            self._provider = None

    # -- loading ---------------------------------------------------------------------------
    def load(self, *, prefetch: bool = False) -> tuple[model.DesiredState, tuple[str, ...]]:
        """The desired state and its warnings; policy plugins' objections are errors.

        With `prefetch`, the provider starts reading the declared hosts as soon as the
        configuration names them (see `_prefetch`)."""
        from ivmctl.providers.manager import policy_error, template_filters, validate_desired
        from ivmctl.spec import SpecOptions, load_spec

        ws = self.workspace
        result = load_spec(
            ws.config_dir,
            SpecOptions(
                variables=ws.variables,
                var_files=ws.var_files,
                environ=ws.environ,
                filters=template_filters(self.pm),
                cache_dir=ws.cache_dir,
                early=self._prefetch if prefetch else None,
            ),
        )
        problems = validate_desired(self.pm, result.desired)
        if problems:
            raise policy_error(problems, what="the configuration")
        keep_until_exit(result.desired)
        return result.desired, tuple(str(w) for w in result.warnings)

    def _prefetch(self, config: model.ProviderConfig, hosts: Sequence[str]) -> None:
        """Have the provider read `hosts` while the guests are still being loaded (a
        provider's optional `prefetch`). A hint only: if the provider cannot be built or
        cannot start, the refresh reports it as before."""
        try:
            provider = self.provider(config)
            prefetch = getattr(provider, "prefetch", None)
            if callable(prefetch):
                prefetch(hosts)
        except IvmctlError:
            return

    def provider(self, config: model.ProviderConfig) -> Any:
        """The provider the configuration names (built once per session; again if a
        different configuration is asked for, the first one closed)."""
        from ivmctl.providers.manager import create_provider

        if self._provider is not None and config != self._provider_config:
            self.close()
        if self._provider is None:
            self._provider = create_provider(
                self.pm,
                config,
                config_dir=self.workspace.config_dir,
                environ=self.workspace.environ,
            )
            use_cache = getattr(self._provider, "use_cache", None)
            if callable(use_cache):  # optional: providers that can reuse parsed listings
                use_cache(self.workspace.cache_dir)
            self._provider_config = config
        return self._provider

    # -- refresh and plan ------------------------------------------------------------------
    def refresh(
        self, desired: model.DesiredState, state: State, *, tolerate_unreachable: bool = False
    ) -> tuple[model.ActualState, tuple[model.Host, ...]]:
        """Actual state of every declared or owned host, plus the hosts to provision.

        A host that does not answer is a ProviderError, unless `tolerate_unreachable`
        (then it is in `actual.unreachable` and is never provisioned).
        """
        provider = self.provider(desired.provider)
        owned_hosts = {record.host for record in state.resources.values()}
        hosts = sorted(set(desired.hosts) | owned_hosts)
        actual = self.read_hosts(desired, hosts, tolerate_unreachable=tolerate_unreachable)
        missing = [
            desired.hosts[h]
            for h in sorted(desired.hosts)
            if h not in actual.hosts and h not in actual.unreachable
        ]
        if not missing or not provider.capabilities.can_provision_hosts:
            return actual, ()
        no_hardware = [h.name for h in missing if h.hardware is None]
        if no_hardware:
            raise ProviderError(
                f"host {no_hardware[0]} does not exist and declares no hardware",
                detail="Declare its hardware (cores, memory, nics) so the provider can "
                "provision it, or check the host name.",
            )
        # Plan as if the missing hosts existed, empty, with the declared hardware.
        hosts_now = dict(actual.hosts)
        for host in missing:
            hosts_now[host.name] = model.Host(
                name=host.name, version=host.version, hardware=host.hardware
            )
        return replace(actual, hosts=hosts_now), tuple(missing)

    def read_hosts(
        self,
        desired: model.DesiredState,
        hosts: Sequence[str],
        *,
        tolerate_unreachable: bool = False,
    ) -> model.ActualState:
        """The provider's refresh of `hosts`; a host that does not answer is a
        ProviderError naming every such host, unless `tolerate_unreachable`."""
        from ivmctl.core.reachability import require_reachable

        actual: model.ActualState = self.provider(desired.provider).refresh(hosts)
        if not tolerate_unreachable:
            require_reachable(actual)
        return actual

    def plan(self, options: PlanOptions = PlanOptions()) -> Planned:
        """Load, refresh and plan; policy plugins may block the plan."""
        from ivmctl.providers.manager import check_plan, policy_error

        desired, warnings = self.load(prefetch=True)
        state = self.backend.read()
        # with --target, hosts that do not answer are left alone instead of stopping the plan
        actual, to_provision = self.refresh(
            desired, state, tolerate_unreachable=bool(options.targets)
        )
        applied, recorded, unreachable_note = desired, state, ""
        if actual.unreachable:
            from ivmctl.core.reachability import leave_unreachable_alone

            desired, state, unreachable_note = leave_unreachable_alone(
                desired, state, frozenset(actual.unreachable), options.targets
            )
        inventory = Inventory(
            owned=state.owned,
            prevent_destroy=frozenset(a for a, r in state.resources.items() if r.prevent_destroy),
        )
        target = _without_guests_and_vswitches(desired) if options.destroy else desired
        from ivmctl.plan.planner import make_plan  # after the prefetch began (see `load`)

        plan = make_plan(
            target,
            actual,
            inventory,
            allow_restart=options.allow_restart,
            targets=options.targets,
            refresh_only=options.refresh_only,
            state_serial=state.serial,
            state_lineage=state.lineage,
        )
        if to_provision and not options.refresh_only and not options.destroy:
            plan = _with_provisioning(plan, to_provision)
        if unreachable_note:
            plan = replace(plan, warnings=(unreachable_note, *plan.warnings))
        problems = check_plan(self.pm, plan, applied)
        if problems:
            raise policy_error(problems, what="the plan")
        planned = Planned(
            plan=plan, desired=applied, actual=actual, state=recorded, warnings=warnings
        )
        keep_until_exit(planned)
        return planned

    def steps(self, plan: Plan, desired: model.DesiredState) -> list[tuple[Change, list[Any]]]:
        """The native steps of every change, in plan order (for `plan --commands`)."""
        executor = ProviderExecutor(self.provider(desired.provider), desired)
        return [
            (change, [s for op in change.operations for s in executor.steps(op)])
            for change in plan.actionable
        ]

    # -- apply -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, *, operation: str, timeout: float = 0.0) -> Iterator[None]:
        """Hold the state lock; re-entrant within the session, so a command can lock
        before it plans (as apply does) and apply inside the same lock."""
        if self._locked:
            yield
            return
        with self.backend.lock(operation=operation, timeout=timeout):
            self._locked = True
            try:
                yield
            finally:
                self._locked = False

    def check_fresh(self, plan: Plan, desired: model.DesiredState, state: State) -> None:
        """Refuse a saved plan for another configuration or one that went stale."""
        if plan.config_digest != desired.digest:
            raise PlanFileError(
                "the saved plan was made for a different configuration",
                detail="The configuration changed since the plan was saved (or the plan comes "
                "from another directory). Run `ivmctl plan -out FILE` again.",
            )
        if state.lineage != plan.state_lineage and plan.state_serial != 0:
            raise PlanFileError(
                "the saved plan belongs to another state (lineage "
                f"{plan.state_lineage}, this state is {state.lineage})",
                detail="Plan again in this directory.",
            )
        if state.serial != plan.state_serial:
            raise StalePlanError(
                "Saved plan is stale: the state changed since the plan was made "
                f"(serial {plan.state_serial}, now {state.serial})",
                detail="Run `ivmctl plan -out FILE` again and apply the new plan.",
            )
        generation = self.provider(desired.provider).generation()
        if generation != plan.runtime_generation:
            raise StalePlanError(
                "Saved plan is stale: the runtime changed since the plan was made "
                f"(generation {plan.runtime_generation}, now {generation})",
                detail="Run `ivmctl plan -out FILE` again and apply the new plan.",
            )

    def forget_vanished(self, planned: Planned) -> tuple[str, ...]:
        """Drop from the state what ivmctl owns but neither the runtime nor the
        configuration has any more (a delete whose record a crash lost, or an object
        removed by hand), so the name can never be taken for ivmctl's own again.

        Only with a freshly refreshed plan, under the lock, if the state did not change
        since; returns the addresses forgotten.
        """
        actual = planned.actual
        if actual is None:
            return ()
        gone = _vanished(planned.state, planned.desired, actual)
        if not gone:
            return ()
        with self.lock(operation="apply"):
            state = self.backend.read()
            if state.serial != planned.state.serial or state.lineage != planned.state.lineage:
                return ()
            for address in gone:
                state = state.without(address)
            self.backend.write(state)
        return gone

    def apply(
        self,
        planned: Planned,
        *,
        parallelism: int = 10,
        fail_fast: bool = False,
        lock_timeout: float = 0.0,
        saved: bool = False,
        on_event: Callable[[ApplyEvent], None] = lambda event: None,
        stop_requested: Callable[[], bool] = lambda: False,
        step_timeout: float | None = None,
    ) -> ApplyResult:
        """Apply a plan under the state lock, recording ownership as changes complete
        (and the intent to create before each create) in the state journal."""
        from ivmctl.core.apply import apply_plan  # imported here: `plan` never applies
        from ivmctl.providers.manager import after_apply, before_apply

        plan, desired = planned.plan, planned.desired
        with self.lock(operation="apply", timeout=lock_timeout):
            state = self.backend.read()
            if saved:
                self.check_fresh(plan, desired, state)
            elif state.serial != planned.state.serial or (
                state.serial and state.lineage != planned.state.lineage
            ):
                raise StalePlanError(
                    "the state changed while this plan was shown (another run applied)",
                    detail="Run the command again to plan from the current state.",
                )
            if self.forget_vanished(planned):
                state = self.backend.read()
            state = settle_intents(self.backend, state, planned.actual)
            before_apply(self.pm, plan)
            executor = ProviderExecutor(self.provider(desired.provider), desired)
            with recording(self.backend, state, desired) as recorder:
                result = apply_plan(
                    plan,
                    executor,
                    parallelism=parallelism,
                    fail_fast=fail_fast,
                    on_event=on_event,
                    on_operation_starting=recorder.before_operation,
                    on_change_done=recorder,
                    on_change_failed=recorder.partial,
                    stop_requested=stop_requested,
                    step_timeout=step_timeout,
                )
                recorder.remember_protection()
            after_apply(self.pm, plan, result)
        return result

    def remember_protection(self, desired: model.DesiredState) -> None:
        """Record every owned guest's declared `prevent_destroy` in the state.

        Declaring protection changes nothing in the runtime, so no change carries it; an
        apply with nothing to do must still remember it, or removing the guest from the
        configuration later would plan its deletion.
        """
        with self.lock(operation="apply"):
            _Recorder(self.backend, self.backend.read(), desired).remember_protection()


def _vanished(
    state: State, desired: model.DesiredState, actual: model.ActualState
) -> tuple[str, ...]:
    """Owned addresses that are neither declared nor anywhere in the runtime (on a host
    that did not answer, nothing is known to be gone)."""
    stale = {name for _, name in actual.not_runnable}
    gone = []
    for address, record in sorted(state.resources.items()):
        if record.host in actual.unreachable:
            continue
        kind, _, rest = address.partition(".")
        if kind == "guest":
            if rest not in desired.guests and rest not in actual.guests and rest not in stale:
                gone.append(address)
        elif kind == "vswitch":
            host, _, name = rest.partition(".")
            declared = host in desired.hosts and name in desired.hosts[host].vswitches
            present = host in actual.hosts and name in actual.hosts[host].vswitches
            if not declared and not present and host == record.host:
                gone.append(address)
    return tuple(gone)


def _without_guests_and_vswitches(desired: model.DesiredState) -> model.DesiredState:
    """The desired state of `destroy`: the hosts stay, everything on them goes."""
    hosts = {name: replace(host, vswitches={}) for name, host in desired.hosts.items()}
    return replace(desired, hosts=hosts, guests={})


def _with_provisioning(plan: Plan, hosts: Sequence[model.Host]) -> Plan:
    """Prepend host creations; every change on those hosts depends on them."""
    creations = [
        Change(
            address=host.address,
            action=Action.CREATE,
            host=host.name,
            after={
                "name": host.name,
                "version": host.version,
                "cores": host.hardware.cores if host.hardware else None,
                "memory_mb": host.hardware.memory_mb if host.hardware else None,
                "nics": list(host.hardware.nics) if host.hardware else [],
            },
            reasons=(
                "the host does not exist yet; the provider provisions it with the "
                "declared hardware",
            ),
            operations=(_provision_operation(host),),
        )
        for host in hosts
    ]
    new_hosts = {h.name: h.address for h in hosts}
    changes = [
        replace(c, depends_on=(*c.depends_on, new_hosts[c.host]))
        if c.host in new_hosts and c.action is not Action.NOOP
        else c
        for c in plan.changes
    ]
    return replace(plan, changes=(*creations, *changes))
