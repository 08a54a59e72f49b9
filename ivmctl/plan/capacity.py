"""Capacity-aware ordering: replay the plan against a model of each affected host.

Every host whose guests start, stop, move or change entitlement gets a
`rules.HostCapacity` built from the guests running there now (admitted in a
deterministic order). Changes are then taken in priority order (vswitches first,
then stops and departures, migrations, updates, arrivals and starts, vswitch
deletes last); a change is scheduled only when its structural dependencies are done
and every one of its operations is admitted by the model, so running the changes in
the resulting order never meets a refusal the plan could have known.

When no change can go next, the planner tries what an operator would: move a guest
offline instead of online (it then needs its boot memory, not its dynamic-memory
maximum), or stop a guest that is leaving a full host first so that another can
arrive (a swap between two full hosts) — both only for guests allowed to restart.
Otherwise the plan is refused with a per-host capacity report.

Capacity edges are added to `depends_on`: a change that takes capacity on a host
depends on the earlier changes that free capacity there.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import field, replace
from heapq import heapify, heappop, heappush, merge

from ivmctl.errors import InsufficientResources, Location, PlanError, RuleViolation
from ivmctl.plan.model import Action, Change, Operation, OpKind
from ivmctl.rules import Demand, HostCapacity
from ivmctl.values import frozen

MAKE_ROOM = "make-room"
ONLINE_MOVE_REASON_END = "it moves online"  # how classify ends the reason of an online move
ONLINE_AFTER_MOVE = " change online on "  # and says what changes online after it


@frozen
class CapacityModel:
    """The inputs of the replay.

    `hosts`: capacity now (running guests admitted), only for hosts whose hardware is
    known; `demands`: what each guest holds once started with its planned
    configuration; `migration_demands`: what an online migration needs on the target
    (the dynamic-memory maximum of the guest as it runs now); `current_demands`: what
    a running guest holds now, which it takes along when it migrates; `final_running`:
    per host, the guests expected to run when the plan is done (for the report and the
    fit check).
    """

    hosts: Mapping[str, HostCapacity]
    demands: Mapping[str, Demand]
    migration_demands: Mapping[str, Demand]
    current_demands: Mapping[str, Demand] = field(default_factory=dict)
    final_running: Mapping[str, tuple[Demand, ...]]


@frozen
class Refusal:
    host: str
    problem: str


# --------------------------------------------------------------------------------------------
# Replay
# --------------------------------------------------------------------------------------------


def _effect_hosts(op: Operation) -> tuple[str, ...]:
    if op.kind is OpKind.GUEST_MIGRATE and op.params.get("online"):
        return (op.host, str(op.params["target"]))
    if op.kind in (OpKind.GUEST_START, OpKind.GUEST_STOP, OpKind.GUEST_DELETE):
        return (op.host,)
    if (
        op.kind is OpKind.GUEST_MODIFY
        and op.params.get("online")
        and ("entitlement" in op.params.get("set", {}))
    ):
        return (op.host,)
    return ()


def touches_capacity(change: Change) -> bool:
    # most changes of a large plan are no-ops: no operation, nothing to look through
    return bool(change.operations) and any(_effect_hosts(op) for op in change.operations)


def replay_op(
    op: Operation, caps: MutableMapping[str, HostCapacity], model: CapacityModel
) -> Refusal | None:
    """Apply one operation to `caps` in place; a Refusal when the host would refuse it."""
    name = str(op.params.get("name", ""))
    try:
        if op.kind in (OpKind.GUEST_STOP, OpKind.GUEST_DELETE):
            if op.host in caps:
                caps[op.host] = caps[op.host].release(name)
        elif op.kind is OpKind.GUEST_START:
            if op.host in caps:
                caps[op.host] = caps[op.host].admit(model.demands[name])
        elif op.kind is OpKind.GUEST_MIGRATE and op.params.get("online"):
            target = str(op.params["target"])
            if target in caps:
                need = model.migration_demands[name]
                found = caps[target].problems(need)
                if found:
                    return Refusal(
                        host=target,
                        problem=f"guest {name!r} cannot migrate online to {target}: "
                        + "; ".join(found),
                    )
                held = model.current_demands.get(name, model.demands[name])
                caps[target] = caps[target].admit(held)
            if op.host in caps:
                caps[op.host] = caps[op.host].release(name)
        elif op.kind is OpKind.GUEST_MODIFY and op.params.get("online"):
            entitlement = op.params.get("set", {}).get("entitlement")
            if entitlement is not None and op.host in caps:
                caps[op.host] = caps[op.host].with_entitlement(name, float(entitlement["min"]))
    except InsufficientResources as exc:
        return Refusal(host=op.host, problem=exc.summary)
    except RuleViolation as exc:
        return Refusal(host=op.host, problem=exc.summary)
    return None


def replay(
    change: Change, caps: Mapping[str, HostCapacity], model: CapacityModel
) -> tuple[dict[str, HostCapacity], Refusal | None]:
    """The new capacities of the hosts `change` alters, or the first refusal (then {}).

    `caps` is left as it is; the caller merges what is returned. Only the hosts the
    change touches are written, so a replay costs the same with ten hosts or a thousand.
    """
    altered: dict[str, HostCapacity] = {}
    trial = ChainMap(altered, caps)  # type: ignore[arg-type]  # writes stay in `altered`
    for op in change.operations:
        refusal = replay_op(op, trial, model)
        if refusal is not None:
            return {}, refusal
    return altered, None


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _entitlement_of(demands: Sequence[Demand]) -> float:
    return round(sum(d.vcpus * d.entitlement_pct for d in demands), 1)


def capacity_report(hosts: Sequence[str], model: CapacityModel) -> str:
    """One line per host: cores, entitlement and memory before and after the plan."""
    lines = ["Capacity per host (before -> after the plan):"]
    for name in hosts:
        cap = model.hosts.get(name)
        if cap is None:
            continue
        final = model.final_running.get(name, ())
        after_mem = sum(d.footprint_mb for d in final)
        widest = max((d.vcpus for d in final), default=0)
        lines.append(
            f"  {name}: cores {cap.cores} (widest guest {widest} vCPUs); "
            f"entitlement {cap.entitlement_used_pct:g}% -> {_entitlement_of(final):g}% "
            f"of {cap.cores * 100}%; "
            f"memory {cap.memory_used_mb} MB -> {after_mem} MB of {cap.pool_mb} MB"
        )
    return "\n".join(lines)


def check_final_fit(hosts: Sequence[str], model: CapacityModel) -> None:
    """Refuse a desired state whose running guests cannot all fit on their host."""
    problems: list[str] = []
    for name in hosts:
        cap = model.hosts.get(name)
        if cap is None:
            continue
        empty = HostCapacity(name=name, cores=cap.cores, pool_mb=cap.pool_mb)
        order = sorted(
            model.final_running.get(name, ()),
            key=lambda d: (-d.vcpus, -d.entitlement_pct, -d.memory_mb, d.name),
        )
        for demand in order:
            try:
                empty = empty.admit(demand)
            except InsufficientResources:  # what problems() finds; asked only on refusal
                found = empty.problems(demand)
                problems.append(f"host {name}: guest {demand.name!r} " + "; ".join(found))
                break
    if problems:
        raise PlanError(
            "the desired state does not fit on "
            + ", ".join(sorted({p.split(":")[0].removeprefix("host ") for p in problems})),
            detail="\n".join(
                [
                    *problems,
                    capacity_report(hosts, model),
                    "Lower vCPUs, entitlement or memory, set power: off, "
                    "or move guests to another host.",
                ]
            ),
            location=Location(address="host." + problems[0].split(":")[0].removeprefix("host ")),
        )


# --------------------------------------------------------------------------------------------
# Ordering
# --------------------------------------------------------------------------------------------


# Sets rather than tuples of members: every change of a plan is ranked, and looking a
# member up on its enum class costs more than the rest of the test.
_FREEING = frozenset({Action.DELETE, Action.STOP})
_ARRIVING = frozenset({Action.CREATE, Action.START})


def _rank(change: Change) -> int:
    action = change.action
    if change.address.startswith("vswitch."):
        return 5 if action is Action.DELETE else 0
    if change.phase == MAKE_ROOM or action in _FREEING:
        return 1
    if action is Action.MIGRATE or (
        change.operations and any(op.kind is OpKind.GUEST_MIGRATE for op in change.operations)
    ):
        return 2
    if action in _ARRIVING:
        return 4
    return 3


def _hosts_with(change: Change, kinds: frozenset[OpKind]) -> set[str]:
    found: set[str] = set()
    for op in change.operations:
        if op.kind in kinds:
            found.add(op.host)
        if op.kind is OpKind.GUEST_MIGRATE and op.params.get("online"):
            found.add(op.host if OpKind.GUEST_STOP in kinds else str(op.params["target"]))
        if (
            op.kind is OpKind.GUEST_MODIFY
            and op.params.get("online")
            and ("entitlement" in op.params.get("set", {}))
        ):
            found.add(op.host)
    return found


_FREES = frozenset({OpKind.GUEST_STOP, OpKind.GUEST_DELETE})
_TAKES = frozenset({OpKind.GUEST_START})


@frozen
class Ordering:
    """The changes in execution order, with capacity edges added to `depends_on`."""

    changes: tuple[Change, ...]


def order_changes(
    changes: Sequence[Change],
    model: CapacityModel,
    *,
    alternatives: Mapping[str, tuple[Operation, ...]],
    restart_hints: Mapping[str, str],
) -> Ordering:
    """Order `changes` so each is admitted when run in sequence; raises PlanError if none is.

    Changes are taken in passes, each in priority order (`_rank`, then key): a change
    goes when its dependencies are done and the replay admits it, else it waits for a
    later pass. A waiting change is looked at again only when what held it back changes
    (the dependency it waits for is done, or the capacity of a host it touches), at its
    place in the current pass if that is still ahead, else in the next pass: the order
    of looking at every change in every pass, at the cost of a look per change and per
    such event. When a pass admits nothing, a stuck migration may move offline or make
    room (`_try_offline`, `_try_make_room`); otherwise the plan is refused.
    """
    work: dict[str, Change] = {c.key: c for c in changes}
    done: set[str] = set()
    ordered: list[str] = []
    caps = dict(model.hosts)
    split: set[str] = set()
    waiting: dict[str, list[str]] = {}  # dependency -> changes waiting for it
    parked: dict[str, list[str]] = {}  # host -> changes its capacity refused
    refused: dict[str, Refusal] = {}  # change -> its refusal, while it waits for capacity
    leavers: dict[str, list[str]] | None = None  # for _try_make_room, built when needed

    def position(key: str) -> tuple[int, str]:
        return (_rank(work[key]), key)

    # No-ops nobody waits for go in the first pass at their place, whatever happens; they
    # are merged in at the end instead of going through the passes (most of a large plan).
    awaited = {d for c in changes for d in c.depends_on}
    inert = sorted(
        position(k)
        for k, c in work.items()
        if not c.operations and not c.depends_on and k not in awaited
    )
    done.update(key for _, key in inert)
    now = [position(k) for k in work if k not in done]  # this pass, as a heap
    heapify(now)
    queued = {key for _, key in now}  # the keys in `now`
    later: set[str] = set()  # the next pass
    first_pass: int | None = None  # how many of `ordered` the first pass took

    def wake(keys: Sequence[str], after: tuple[int, str]) -> None:
        for key in keys:
            if key in done or key in queued or key in later:
                continue
            spot = position(key)
            if spot > after:  # still ahead in this pass
                heappush(now, spot)
                queued.add(key)
            else:
                later.add(key)

    while len(done) < len(work):
        while now:
            spot = heappop(now)
            key = spot[1]
            queued.discard(key)
            change = work[key]
            refused.pop(key, None)
            blocker = next((d for d in change.depends_on if d in work and d not in done), None)
            if blocker is not None:
                waiting.setdefault(blocker, []).append(key)
                continue
            altered: dict[str, HostCapacity] = {}
            if touches_capacity(change):
                altered, refusal = replay(change, caps, model)
                if refusal is not None:
                    refused[key] = refusal
                    for host in {h for op in change.operations for h in _effect_hosts(op)}:
                        parked.setdefault(host, []).append(key)
                    continue
                caps.update(altered)
            done.add(key)
            ordered.append(key)
            wake(waiting.pop(key, ()), spot)
            for host in sorted(altered):
                wake(parked.pop(host, ()), spot)
        if first_pass is None:
            first_pass = len(ordered)
        if not later and len(done) < len(work):
            stuck = sorted(refused.items(), key=lambda item: position(item[0]))
            if not stuck:
                raise PlanError(
                    "the planned changes depend on each other in a cycle: "
                    + ", ".join(sorted(k for k in work if k not in done)),
                    detail="This is a bug in ivmctl's planner; please report it with the "
                    "plan input.",
                )
            offline = _try_offline(stuck, work, caps, model, alternatives)
            if offline is not None:
                later.add(offline)
            else:
                if leavers is None:
                    leavers = _leavers(work, alternatives)
                made = _try_make_room(stuck, work, caps, alternatives, split, leavers)
                if made is None:
                    raise _infeasible(stuck, work, model, restart_hints)
                later.update(made)
        now.extend(position(k) for k in later)
        heapify(now)
        queued.update(later)
        later.clear()
    first = merge(inert, [position(k) for k in ordered[:first_pass]])
    keys = [key for _, key in first] + ordered[first_pass:]
    return Ordering(changes=_with_capacity_edges([work[k] for k in keys]))


def _try_offline(
    stuck: Sequence[tuple[str, Refusal]],
    work: dict[str, Change],
    caps: Mapping[str, HostCapacity],
    model: CapacityModel,
    alternatives: Mapping[str, tuple[Operation, ...]],
) -> str | None:
    """Move a stuck online migration offline (stop, move, start) when that fits now; its key."""
    for key, refusal in stuck:
        change = work[key]
        alternative = alternatives.get(key)
        if alternative is None or change.phase:
            continue
        if not any(
            op.kind is OpKind.GUEST_MIGRATE and op.params.get("online") for op in change.operations
        ):
            continue
        candidate = replace(change, operations=alternative)
        _, again = replay(candidate, caps, model)
        if again is None:
            work[key] = replace(
                candidate,
                reasons=(
                    *_without_online_reason(change.reasons),
                    f"host changes from {(change.before or {}).get('host')} to {change.host}, "
                    f"but an online move does not fit ({refusal.problem}): it is stopped, moved "
                    "offline, changed while Off and started on the target, where it needs only "
                    "what its planned configuration holds (restart allowed)",
                ),
            )
            return key
    return None


def _leaves_online(change: Change, host: str) -> bool:
    return any(
        op.kind is OpKind.GUEST_MIGRATE and op.params.get("online") and op.host == host
        for op in change.operations
    )


def _leavers(
    work: Mapping[str, Change], alternatives: Mapping[str, tuple[Operation, ...]]
) -> dict[str, list[str]]:
    """Per host, in key order, the changes that leave it online and could stop first instead."""
    found: dict[str, list[str]] = {}
    for key in sorted(work):
        alternative = alternatives.get(key)
        if alternative is None or alternative[0].kind is not OpKind.GUEST_STOP:
            continue
        for op in work[key].operations:
            if op.kind is OpKind.GUEST_MIGRATE and op.params.get("online"):
                found.setdefault(op.host, []).append(key)
    return found


def _try_make_room(
    stuck: Sequence[tuple[str, Refusal]],
    work: dict[str, Change],
    caps: Mapping[str, HostCapacity],
    alternatives: Mapping[str, tuple[Operation, ...]],
    split: set[str],
    leavers: Mapping[str, Sequence[str]],
) -> tuple[str, str] | None:
    """Stop a guest leaving the full host early (it then moves offline).

    Returns the keys of the new stop and of the changed move. `leavers` are the
    candidates per host (`_leavers`); each is checked again as the work stands now.
    """
    for key, refusal in stuck:
        host = refusal.host
        running = set(caps[host].running) if host in caps else set()
        for other_key in leavers.get(host, ()):
            other = work[other_key]
            alternative = alternatives.get(other_key)
            if other_key == key or other_key in split or alternative is None or other.phase:
                continue
            name = other.address.removeprefix("guest.")
            if not _leaves_online(other, host) or name not in running:
                continue
            split.add(other_key)
            stop = Change(
                address=other.address,
                action=Action.STOP,
                host=host,
                before=other.before,
                after=other.before,
                reasons=(
                    f"stopped early to make room on {host} for {work[key].address} "
                    "(the hosts are too full to swap their guests online); restart allowed",
                ),
                operations=(alternative[0],),
                phase=MAKE_ROOM,
            )
            work[stop.key] = stop
            work[other_key] = replace(
                other,
                operations=alternative[1:],
                depends_on=tuple(sorted({*other.depends_on, stop.key})),
                reasons=(
                    *_without_online_reason(other.reasons),
                    f"host changes from {host} to {other.host}; it is stopped first to make "
                    f"room on {host}, so it moves offline and is started on {other.host} once "
                    "there is room (restart allowed)",
                ),
            )
            return stop.key, other_key
    return None


def _without_online_reason(reasons: Sequence[str]) -> tuple[str, ...]:
    """Drop the reason announcing an online move, once the move is made offline instead."""
    return tuple(
        r for r in reasons if not r.endswith(ONLINE_MOVE_REASON_END) and ONLINE_AFTER_MOVE not in r
    )


def _infeasible(
    stuck: Sequence[tuple[str, Refusal]],
    work: Mapping[str, Change],
    model: CapacityModel,
    restart_hints: Mapping[str, str],
) -> PlanError:
    hosts = sorted({r.host for _, r in stuck} | _moving_hosts(work, [k for k, _ in stuck]))
    lines = [f"{work[k].address}: {r.problem}" for k, r in stuck]
    hints = sorted({h for h in restart_hints.values() if h})
    if hints:
        lines.append(
            "A stop/start would make it feasible: "
            + "; ".join(hints)
            + " (set lifecycle.restart: allow on the guest or pass --allow-restart ADDRESS)."
        )
    lines.append(capacity_report(hosts, model))
    return PlanError(
        "no order of the planned changes fits the capacity of " + ", ".join(hosts),
        detail="\n".join(lines),
        location=Location(address=work[stuck[0][0]].address),
    )


def _moving_hosts(work: Mapping[str, Change], keys: Sequence[str]) -> set[str]:
    hosts: set[str] = set()
    for key in keys:
        for op in work[key].operations:
            if op.kind is OpKind.GUEST_MIGRATE:
                hosts.update({op.host, str(op.params["target"])})
    return hosts


def _with_capacity_edges(changes: Sequence[Change]) -> tuple[Change, ...]:
    """Each change taking capacity on a host depends on earlier ones freeing it there."""
    freed: dict[str, list[str]] = {}
    out: list[Change] = []
    for change in changes:
        if not touches_capacity(change):
            out.append(change)
            continue
        deps = set(change.depends_on)
        for host in _hosts_with(change, _TAKES):
            deps.update(k for k in freed.get(host, ()) if k != change.key)
        if deps != set(change.depends_on):
            change = replace(change, depends_on=tuple(sorted(deps)))
        out.append(change)
        for host in _hosts_with(change, _FREES):
            freed.setdefault(host, []).append(change.key)
    return tuple(out)
