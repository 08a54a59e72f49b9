"""The plan as a graph: which changes can run together, and whether the graph is sound.

`Change.depends_on` names change keys; `Plan.changes` is one valid sequential order.
`waves` groups the actionable changes into rounds whose members depend only on
earlier rounds (what `apply --parallelism` may overlap); `graph_problems` says what
is wrong with a graph that is not a DAG consistent with the order (used when reading
a saved plan, and by tests).
"""

from __future__ import annotations

from ivmctl.plan.model import Plan


def waves(plan: Plan) -> tuple[tuple[str, ...], ...]:
    """Actionable change keys in rounds; each round depends only on earlier ones."""
    actionable = plan.actionable
    keys = {c.key for c in actionable}
    level: dict[str, int] = {}
    for change in actionable:  # changes are in a valid order: dependencies come first
        deps = [level[d] for d in change.depends_on if d in keys and d in level]
        level[change.key] = 1 + max(deps, default=-1)
    rounds: list[list[str]] = [[] for _ in range(1 + max(level.values(), default=-1))]
    for change in actionable:
        rounds[level[change.key]].append(change.key)
    return tuple(tuple(r) for r in rounds)


def graph_problems(plan: Plan) -> list[str]:
    """Duplicate keys, and dependencies that are unknown or come later in the order."""
    problems: list[str] = []
    seen: set[str] = set()
    every = {c.key for c in plan.changes}
    for change in plan.changes:
        if change.key in seen:
            problems.append(f"{change.key} appears twice")
        for dep in change.depends_on:
            if dep not in every:
                problems.append(f"{change.key} depends on {dep}, which the plan does not have")
            elif dep not in seen:
                problems.append(f"{change.key} depends on {dep}, which comes after it")
        seen.add(change.key)
    return problems
