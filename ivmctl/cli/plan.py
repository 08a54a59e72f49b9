"""`ivmctl plan`, `ivmctl show` and `ivmctl graph`: what would change, and in which order."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ivmctl import __version__
from ivmctl.cli import CliContext, ExitStatus
from ivmctl.cli.common import variable_options, workspace, write_atomically


def plan_options(function: Any) -> Any:
    """The options that shape a plan, shared by plan, apply and destroy."""
    function = click.option(
        "--target",
        "targets",
        multiple=True,
        metavar="ADDR",
        help="Limit the plan to this address (and what it depends on). Repeatable.",
    )(function)
    function = click.option(
        "--allow-restart",
        "allow_restart",
        multiple=True,
        metavar="ADDR",
        help="Allow restarting this guest even if its lifecycle.restart is deny. Repeatable.",
    )(function)
    return variable_options(function)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def print_commands(session: Any, plan: Any, desired: Any) -> None:
    """The exact hpvm* command lines, per host, in execution order (a runbook)."""
    steps = session.steps(plan, desired)
    if not steps:
        click.echo("# No changes: nothing to run.")
        return
    for change, change_steps in steps:
        click.echo(f"# {change.key}: {change.action.value}")
        for step in change_steps:
            click.echo(f"{step.host}$ {step.command_line}")


@click.command(name="plan")
@plan_options
@click.option("-out", "--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Save the plan to FILE for `ivmctl apply FILE`.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the plan as versioned JSON.")
@click.option("--commands", is_flag=True, help="Print the exact hpvm* commands per host.")
@click.option("--refresh-only", is_flag=True, help="Only report drift; plan no changes.")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 when there are no changes, 2 when there are, 1 on error.")  # fmt: skip
@click.option("--show-unchanged", is_flag=True, help="Also list objects that need nothing.")
@click.pass_obj
def plan(
    ctx: CliContext,
    targets: tuple[str, ...],
    allow_restart: tuple[str, ...],
    variables: tuple[str, ...],
    var_files: tuple[Path, ...],
    out: Path | None,
    as_json: bool,
    commands: bool,
    refresh_only: bool,
    detailed_exitcode: bool,
    show_unchanged: bool,
) -> None:
    """Show what apply would change, and why.

    \b
    Examples:
      ivmctl -C examples/quickstart plan
      ivmctl plan -out tonight.plan
      ivmctl plan --commands          # the hpvm* runbook
      ivmctl plan --detailed-exitcode # 0 no changes, 2 changes, 1 error
    """
    from ivmctl.core.session import PlanOptions, Session

    with Session(workspace(ctx, variables, var_files)) as session:
        planned = session.plan(
            PlanOptions(
                allow_restart=frozenset(allow_restart),
                targets=frozenset(targets),
                refresh_only=refresh_only,
            )
        )
        # imported now, not before: the refresh starts as the configuration names the
        # hosts, and what it does not need is imported after that
        from ivmctl.plan.planfile import encode_plan, plan_to_dict
        from ivmctl.render.plan import print_plan

        result = planned.plan
        if out is not None:
            write_atomically(out, encode_plan(result, ivmctl_version=__version__,
                                              created_at=now_iso()))  # fmt: skip
        if as_json:
            click.echo(json.dumps(plan_to_dict(result), indent=2, sort_keys=True))
        elif commands:
            print_commands(session, result, planned.desired)
        else:
            for warning in planned.warnings:
                click.echo(f"warning: {warning}", err=True)
            print_plan(result, show_noop=show_unchanged)
            if out is not None:
                click.echo(f"\nSaved the plan to {out}. Apply it with: ivmctl apply {out}")
    if detailed_exitcode and result.actionable:
        raise SystemExit(ExitStatus.CHANGES)


@click.command(name="show")
@click.argument("planfile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the plan as versioned JSON.")
def show(planfile: Path, as_json: bool) -> None:
    """Show a saved plan.

    \b
    Example:
      ivmctl show tonight.plan
    """
    from ivmctl.plan.planfile import decode_plan, plan_to_dict
    from ivmctl.render.plan import print_plan

    saved = decode_plan(planfile.read_bytes())
    if as_json:
        click.echo(json.dumps(plan_to_dict(saved), indent=2, sort_keys=True))
    else:
        print_plan(saved)


@click.command(name="graph")
@plan_options
@click.pass_obj
def graph(
    ctx: CliContext,
    targets: tuple[str, ...],
    allow_restart: tuple[str, ...],
    variables: tuple[str, ...],
    var_files: tuple[Path, ...],
) -> None:
    """Print the plan's change graph in DOT (render with `dot -Tsvg`).

    \b
    Example:
      ivmctl graph | dot -Tsvg > plan.svg
    """
    from ivmctl.core.session import PlanOptions, Session

    with Session(workspace(ctx, variables, var_files)) as session:
        result = session.plan(
            PlanOptions(allow_restart=frozenset(allow_restart), targets=frozenset(targets))
        ).plan
    click.echo("digraph plan {")
    click.echo("  rankdir=LR;")
    for change in result.actionable:
        label = f"{change.key}\\n{change.action.value}"
        click.echo(f'  "{change.key}" [label="{label}"];')
        for dependency in change.depends_on:
            click.echo(f'  "{dependency}" -> "{change.key}";')
    click.echo("}")
