"""An example ivmctl policy plugin: entitlement ceilings per label, and restarts per plan.

Installed through the entry-point group `ivmctl` (see pyproject.toml). Both hooks return
`Problem` values; ivmctl reports them all at once and blocks the run. Configuration
comes from the environment, read on every call so tests and operators can change it.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping

from ivmctl.errors import PluginError
from ivmctl.model import DesiredState
from ivmctl.plan.model import Action, Change, OpKind, Plan
from ivmctl.providers import Problem, hookimpl

PLUGIN = "ivmctl-policy-example"
DEFAULT_CEILINGS = "dev*=50;test*=50;lab*=50"
DEFAULT_MAX_RESTARTS = 2


def ceilings(environ: Mapping[str, str] = os.environ) -> dict[str, float]:
    """Entitlement ceilings in percent by label pattern, from IVMCTL_POLICY_CEILINGS."""
    text = environ.get("IVMCTL_POLICY_CEILINGS", DEFAULT_CEILINGS)
    result: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        pattern, eq, value = item.rpartition("=")
        try:
            if not eq or not pattern:
                raise ValueError(item)
            result[pattern.strip().lower()] = float(value)
        except ValueError:
            raise PluginError(
                f"{PLUGIN}: IVMCTL_POLICY_CEILINGS entry {item!r} is not pattern=percent",
                detail="Use e.g. IVMCTL_POLICY_CEILINGS='dev*=50;test*=25'.",
            ) from None
    return result


def max_restarts(environ: Mapping[str, str] = os.environ) -> int:
    """Restarts a plan may contain, from IVMCTL_POLICY_MAX_RESTARTS."""
    text = environ.get("IVMCTL_POLICY_MAX_RESTARTS", str(DEFAULT_MAX_RESTARTS))
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise PluginError(
            f"{PLUGIN}: IVMCTL_POLICY_MAX_RESTARTS {text!r} is not a whole number >= 0"
        )
    return value


def restarts(change: Change) -> bool:
    """Does this change stop a guest and start it again?"""
    kinds = {op.kind for op in change.operations}
    return change.action is Action.RESTART or {OpKind.GUEST_STOP, OpKind.GUEST_START} <= kinds


@hookimpl
def validate_desired(desired: DesiredState) -> list[Problem]:
    """A guest whose label matches a pattern may not be entitled to more than its ceiling.

    The ceiling applies to the guaranteed entitlement (`entitlement` / `-e min`), the
    capacity a guest reserves on its host.
    """
    found: list[Problem] = []
    limits = ceilings()
    for name in sorted(desired.guests):
        guest = desired.guests[name]
        for pattern, ceiling in limits.items():
            if not fnmatch.fnmatchcase(guest.label.lower(), pattern):
                continue
            asked = guest.entitlement.min_pct
            if asked > ceiling:
                found.append(
                    Problem(
                        address=guest.address,
                        message=f"{PLUGIN}: label {guest.label!r} matches {pattern!r}, whose "
                        f"entitlement ceiling is {ceiling:g}%; the guest asks for {asked:g}%. "
                        "Lower its entitlement or change its label.",
                    )
                )
            break  # the first matching pattern decides
    return found


@hookimpl
def check_plan(plan: Plan) -> list[Problem]:
    """A plan may restart at most IVMCTL_POLICY_MAX_RESTARTS guests."""
    limit = max_restarts()
    restarted = [c.address for c in plan.actionable if restarts(c)]
    if len(restarted) <= limit:
        return []
    return [
        Problem(
            address="",
            message=f"{PLUGIN}: the plan restarts {len(restarted)} guests "
            f"({', '.join(restarted)}), more than the {limit} allowed per plan. "
            "Change fewer guests at a time, or raise IVMCTL_POLICY_MAX_RESTARTS.",
        )
    ]
