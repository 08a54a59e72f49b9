"""`ivmctl status` and `ivmctl force-unlock`: how the fleet looks, and freeing a lock."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from ivmctl.cli import CliContext
from ivmctl.cli.common import variable_options, workspace


@click.command(name="status")
@variable_options
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_obj
def status(
    ctx: CliContext, variables: tuple[str, ...], var_files: tuple[Path, ...], as_json: bool
) -> None:
    """Show hosts with the capacity in use, their guests, and drift.

    \b
    Example:
      ivmctl -C examples/quickstart status
    """
    from ivmctl.core.session import Session
    from ivmctl.core.status import host_rows
    from ivmctl.render.status import print_status

    with Session(workspace(ctx, variables, var_files)) as session:
        desired, _ = session.load()
        state = session.backend.read()
        actual, _ = session.refresh(desired, state)
        rows = host_rows(desired, actual, state.owned)
    if as_json:
        body = {"format_version": 1, "hosts": [asdict(row) for row in rows]}
        click.echo(json.dumps(body, indent=2, sort_keys=True))
    else:
        print_status(rows)


@click.command(name="force-unlock")
@click.argument("lock_id")
@click.pass_obj
def force_unlock(ctx: CliContext, lock_id: str) -> None:
    """Remove the state lock LOCK_ID left by a run that is gone.

    \b
    Example:
      ivmctl force-unlock 3f2a9c1e-...
    """
    from ivmctl.core.session import Workspace
    from ivmctl.state import LocalBackend

    backend = LocalBackend(Workspace(config_dir=ctx.config_dir).state_dir)
    holder = backend.force_unlock(lock_id)
    click.echo(f"Removed {holder.describe()}.")
