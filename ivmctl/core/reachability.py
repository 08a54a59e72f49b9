"""What a plan does when some VM Hosts do not answer the refresh.

Nothing can be planned for a host whose guests cannot be read: its guests might be
running, gone or changed. Without `--target` the plan stops and names every such host.
With `--target`, the operator asks for part of the fleet: the plan then leaves the
unreachable hosts and everything on them alone (as if undeclared and not owned, so
nothing is created, adopted or deleted because it was not seen), refuses a target that
lives there, and says so in a warning.
"""

from __future__ import annotations

from dataclasses import replace

from ivmctl import model
from ivmctl.errors import Location, PlanError, ProviderError
from ivmctl.model import host_address
from ivmctl.state import State


def require_reachable(actual: model.ActualState) -> None:
    """Raise ProviderError naming every host that did not answer, if any."""
    if not actual.unreachable:
        return
    names = sorted(actual.unreachable)
    first = names[0]
    raise ProviderError(
        f"cannot read host {first}: it does not answer"
        if len(names) == 1
        else f"cannot read {len(names)} hosts, they do not answer: {', '.join(names)}",
        detail=f"{first}: {actual.unreachable[first]} Fix the connection and plan again, "
        "or plan other hosts with --target ADDRESS (nothing on an unreachable host can be "
        "planned).",
        location=Location(address=host_address(first)),
    )


def leave_unreachable_alone(
    desired: model.DesiredState,
    state: State,
    unreachable: frozenset[str],
    targets: frozenset[str],
) -> tuple[model.DesiredState, State, str]:
    """The configuration and state to plan with, and the warning to show.

    Removes the unreachable hosts, the guests declared on them or recorded there, and the
    state records of objects there. Raises PlanError when a target is among them.
    """
    on_unreachable = {
        address for address, record in state.resources.items() if record.host in unreachable
    }
    guests = {
        name: guest
        for name, guest in desired.guests.items()
        if guest.host not in unreachable and f"guest.{name}" not in on_unreachable
    }
    left_out = sorted(
        {host_address(h) for h in unreachable}
        | on_unreachable
        | {f"guest.{name}" for name in desired.guests if name not in guests}
    )
    for target in sorted(targets):
        host = target.split(".")[1] if target.startswith(("host.", "vswitch.")) else None
        if target in left_out or host in unreachable:
            raise PlanError(
                f"target {target} is on a host that cannot be reached",
                detail="Its current configuration cannot be read, so nothing about it can "
                "be planned. Fix the connection, or leave it out of --target.",
                location=Location(address=target),
            )
    trimmed = replace(
        desired,
        hosts={n: h for n, h in desired.hosts.items() if n not in unreachable},
        guests=guests,
    )
    kept = replace(
        state,
        resources={a: r for a, r in state.resources.items() if a not in on_unreachable},
    )
    warning = (
        f"host{'s' if len(unreachable) > 1 else ''} {', '.join(sorted(unreachable))} "
        "could not be reached: the plan leaves "
        f"{'them' if len(unreachable) > 1 else 'it'} and everything on "
        f"{'them' if len(unreachable) > 1 else 'it'} alone"
    )
    return trimmed, kept, warning
