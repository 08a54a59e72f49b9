"""`ivmctl apply` and `ivmctl destroy`: carry a plan out, with live progress."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import click

from ivmctl.cli import CliContext, ExitStatus
from ivmctl.cli.common import confirm, workspace
from ivmctl.cli.plan import plan_options
from ivmctl.errors import IvmctlError


def apply_options(function: Any) -> Any:
    """Options of every command that applies."""
    options = [
        click.option("--auto-approve", is_flag=True, help="Apply without asking."),
        click.option(
            "--parallelism",
            default=10,
            show_default=True,
            type=click.IntRange(1, 1000),
            help="Changes applied at once.",
        ),
        click.option(
            "--fail-fast", is_flag=True, help="Start no new change after the first failure."
        ),
        click.option(
            "--lock-timeout",
            default=0.0,
            show_default=True,
            type=click.FloatRange(0),
            metavar="SECONDS",
            help="Wait this long for another run's state lock.",
        ),
        click.option(
            "--step-timeout",
            default=None,
            type=click.FloatRange(0, min_open=True),
            metavar="SECONDS",
            help="Fail a step (one hpvm* command) that runs longer; apply moves on.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print apply events as JSON lines."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


class _Interrupts:
    """First Ctrl-C: stop starting new changes. Second: give up at once."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._previous: Any = None

    def __enter__(self) -> _Interrupts:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        print(
            "\nivmctl: stopping: running changes finish, nothing new starts "
            "(press Ctrl-C again to abort at once).",
            file=sys.stderr,
            flush=True,
        )


def run_apply(session: Any, planned: Any, *, saved: bool, options: dict[str, Any]) -> None:
    """Apply with progress and a summary; exits 1 when anything did not complete."""
    from ivmctl.render.progress import print_summary, progress_for

    total = len(planned.plan.actionable)
    if not total:
        click.echo("No changes. Nothing to apply.")
        return
    progress = progress_for(as_json=options["as_json"], total=total, stream=sys.stdout)
    with _Interrupts() as interrupts, progress:
        result = session.apply(
            planned,
            parallelism=options["parallelism"],
            fail_fast=options["fail_fast"],
            lock_timeout=options["lock_timeout"],
            saved=saved,
            on_event=progress,
            stop_requested=interrupts.stop.is_set,
            step_timeout=options["step_timeout"],
        )
    if not options["as_json"]:
        print_summary(result, stream=sys.stdout, errors=sys.stderr)
    if not result.ok:
        raise SystemExit(ExitStatus.ERROR)


@click.command(name="apply")
@click.argument("planfile", required=False,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))  # fmt: skip
@plan_options
@apply_options
@click.pass_obj
def apply(
    ctx: CliContext,
    /,
    planfile: Path | None,
    targets: tuple[str, ...],
    allow_restart: tuple[str, ...],
    variables: tuple[str, ...],
    var_files: tuple[Path, ...],
    **options: Any,
) -> None:
    """Apply the configuration (or exactly a saved plan).

    Without PLANFILE: plan, show the plan, ask for confirmation, apply. With PLANFILE:
    apply exactly that plan, after checking that it was made for this configuration and
    that neither the runtime nor the state changed since.

    \b
    Examples:
      ivmctl -C examples/quickstart apply --auto-approve
      ivmctl plan -out tonight.plan && ivmctl apply tonight.plan
    """
    from ivmctl.core.session import Planned, PlanOptions, Session
    from ivmctl.plan.planfile import decode_plan
    from ivmctl.render.plan import print_plan

    with (
        Session(workspace(ctx, variables, var_files)) as session,
        session.lock(operation="apply", timeout=options["lock_timeout"]),
    ):
        if planfile is not None:
            saved_plan = decode_plan(planfile.read_bytes())
            desired, _ = session.load()
            state = session.backend.read()
            planned = Planned(plan=saved_plan, desired=desired, state=state)
            run_apply(session, planned, saved=True, options=options)
            return
        planned = session.plan(
            PlanOptions(allow_restart=frozenset(allow_restart), targets=frozenset(targets))
        )
        for warning in planned.warnings:
            click.echo(f"warning: {warning}", err=True)
        print_plan(planned.plan)
        if not planned.plan.actionable:
            for address in session.forget_vanished(planned):
                click.echo(f"{address}: gone from the runtime and the configuration; "
                           "removed from the state.")  # fmt: skip
            session.remember_protection(planned.desired)
            return
        if not options["auto_approve"] and not confirm("\nApply these changes?"):
            raise IvmctlError(
                "apply cancelled: nothing was changed",
                detail="Answer 'yes' to apply, or pass --auto-approve (needed without a terminal).",
            )
        run_apply(session, planned, saved=False, options=options)


@click.command(name="destroy")
@plan_options
@apply_options
@click.pass_obj
def destroy(
    ctx: CliContext,
    /,
    targets: tuple[str, ...],
    allow_restart: tuple[str, ...],
    variables: tuple[str, ...],
    var_files: tuple[Path, ...],
    **options: Any,
) -> None:
    """Delete everything ivmctl owns (guests stopped first, vswitches after their guests).

    Objects ivmctl did not create or adopt are never touched; `prevent_destroy` holds.
    Backing files and volumes of deleted guests are kept.

    \b
    Examples:
      ivmctl destroy --target guest.web01
      ivmctl destroy --auto-approve
    """
    from ivmctl.core.session import PlanOptions, Session
    from ivmctl.render.plan import print_plan

    with (
        Session(workspace(ctx, variables, var_files)) as session,
        session.lock(operation="destroy", timeout=options["lock_timeout"]),
    ):
        planned = session.plan(
            PlanOptions(
                allow_restart=frozenset(allow_restart), targets=frozenset(targets), destroy=True
            )
        )
        print_plan(planned.plan)
        count = len(planned.plan.actionable)
        if not count:
            return
        expected = f"destroy {count}"
        if not options["auto_approve"] and not confirm(
            f"\nThis deletes {count} objects.", expected=expected
        ):
            raise IvmctlError(
                "destroy cancelled: nothing was changed",
                detail=f"Type '{expected}' to confirm, or pass --auto-approve.",
            )
        run_apply(session, planned, saved=False, options=options)
