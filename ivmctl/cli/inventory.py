"""`ivmctl import`, `ivmctl export` and `ivmctl state`: what ivmctl owns, and taking over
what already exists. The work is in core/inventory.py; this module parses and prints."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ivmctl.cli import CliContext, ExitStatus
from ivmctl.cli.common import confirm, variable_options, workspace, write_atomically
from ivmctl.errors import StateError
from ivmctl.state import LocalBackend

LOCK_TIMEOUT_HELP = "Seconds to wait for the state lock (default: fail at once)."


@click.command(name="import")
@click.argument("address")
@variable_options
@click.option("--lock-timeout", type=click.FloatRange(min=0), default=0.0, help=LOCK_TIMEOUT_HELP)
@click.pass_obj
def import_(
    ctx: CliContext,
    address: str,
    variables: tuple[str, ...],
    var_files: tuple[Path, ...],
    lock_timeout: float,
) -> None:
    """Adopt ADDRESS, an existing object, without changing it.

    ADDRESS is guest.NAME or vswitch.HOST.NAME. It must be declared in the configuration
    and exist in the runtime, and ivmctl must not own it yet. Import only records
    ownership (under the state lock); afterwards `ivmctl plan` shows any difference
    between the object and its configuration as an ordinary change.

    \b
    Example:
      ivmctl export --host vmhost01 -o /tmp/vmhost01.yaml   # copy web01's YAML from here
      ivmctl import guest.web01
      ivmctl import vswitch.vmhost01.vswprod
    """
    from ivmctl.core.inventory import import_object
    from ivmctl.core.session import Session

    with Session(workspace(ctx, variables, var_files)) as session:
        result = import_object(session, address, lock_timeout=lock_timeout)
    record = result.record
    click.echo(f"Imported {record.address} (on host {record.host}); the runtime was not changed.")
    if result.differences:
        click.echo(
            "It differs from its configuration in: "
            + ", ".join(result.differences)
            + ". Run `ivmctl plan` to see the change."
        )
    else:
        click.echo("It matches its configuration.")


@click.command(name="export")
@click.option(
    "--host",
    "hosts",
    multiple=True,
    metavar="HOST",
    help="Export this host (repeatable). Default: every declared or owned host.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to FILE (atomically) instead of standard output.",
)
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@variable_options
@click.pass_obj
def export(
    ctx: CliContext,
    hosts: tuple[str, ...],
    output: Path | None,
    force: bool,
    variables: tuple[str, ...],
    var_files: tuple[Path, ...],
) -> None:
    """Write ivmctl/v1 YAML for what the runtime has.

    Hosts with their version, hardware and vswitches, and every runnable guest with
    every field; values the runtime chose (MAC, port, bus/slot) are not pinned and
    Off (NR) copies are left out. The output validates and plans to no change against
    the runtime it came from (declared objects not yet owned show as adoptions; import
    them, or apply, which only records ownership). The provider block of the current
    configuration is copied. Do not write it into the configuration directory next to
    the files that already declare the same hosts: a name may be defined only once.

    \b
    Example:
      ivmctl export --host vmhost01 -o /tmp/vmhost01.yaml
      ivmctl export > fleet.yaml
    """
    from ivmctl.core.inventory import export_config
    from ivmctl.core.session import Session

    if output is not None and output.exists() and not force:
        raise StateError(
            f"{output} exists",
            detail="Choose another file, or add --force to overwrite it.",
        )
    with Session(workspace(ctx, variables, var_files)) as session:
        exported = export_config(session, hosts)
    if output is None:
        click.echo(exported.text, nl=False)
    else:
        write_atomically(output, exported.text.encode("utf-8"))
        click.echo(
            f"Wrote {output}: {len(exported.hosts)} host(s), {len(exported.guests)} guest(s).",
            err=True,
        )
    for copy in exported.skipped:
        click.echo(f"Left out the Off (NR) copy of {copy}.", err=True)


@click.group(name="state")
def state() -> None:
    """List, show and forget what ivmctl owns (the state under .ivmctl/).

    \b
    Example:
      ivmctl state list
      ivmctl state show guest.web01
      ivmctl state rm guest.web01 --yes
    """


def _backend(ctx: CliContext) -> LocalBackend:
    from ivmctl.core.session import STATE_DIR

    return LocalBackend(ctx.config_dir / STATE_DIR)


@state.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
@click.pass_obj
def state_list(ctx: CliContext, as_json: bool) -> None:
    """List the addresses ivmctl owns, their host, status and prevent_destroy.

    STATUS is `owned`, or `creating` for an object whose create an apply was about to
    run when it stopped (owned all the same; the next apply settles it).

    \b
    Example:
      ivmctl state list
      ivmctl state list --json
    """
    from ivmctl.core.inventory import state_records

    current, records = state_records(_backend(ctx))
    if as_json:
        body = {
            "format_version": 1,
            "lineage": current.lineage,
            "serial": current.serial,
            "resources": [
                {
                    "address": r.address,
                    "host": r.host,
                    "prevent_destroy": r.prevent_destroy,
                    "status": r.status.value,
                }
                for r in records
            ],
        }
        click.echo(json.dumps(body, indent=2, sort_keys=True))
        return
    if not records:
        click.echo("ivmctl owns nothing in this directory.")
        return
    width = max(len(r.address) for r in records)
    host_width = max(len("HOST"), *(len(r.host) for r in records))
    click.echo(f"{'ADDRESS':<{width}}  {'HOST':<{host_width}}  STATUS    PREVENT_DESTROY")
    for r in records:
        flag = "yes" if r.prevent_destroy else "no"
        click.echo(f"{r.address:<{width}}  {r.host:<{host_width}}  {r.status.value:<8}  {flag}")


@state.command(name="show")
@click.argument("address")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@click.pass_obj
def state_show(ctx: CliContext, address: str, as_json: bool) -> None:
    """Show the state record of ADDRESS.

    \b
    Example:
      ivmctl state show guest.web01
    """
    from ivmctl.core.inventory import state_record

    record = state_record(_backend(ctx), address)
    fields = {
        "address": record.address,
        "host": record.host,
        "status": record.status.value,
        "prevent_destroy": record.prevent_destroy,
        "digest": record.digest,
    }
    if as_json:
        click.echo(json.dumps(fields, indent=2, sort_keys=True))
        return
    for key, value in fields.items():
        shown = ("yes" if value else "no") if isinstance(value, bool) else value or "-"
        click.echo(f"{key + ':':<17}{shown}")


@state.command(name="rm")
@click.argument("address")
@click.option("--yes", "-y", "yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--lock-timeout", type=click.FloatRange(min=0), default=0.0, help=LOCK_TIMEOUT_HELP)
@click.pass_obj
def state_rm(ctx: CliContext, address: str, yes: bool, lock_timeout: float) -> None:
    """Forget ADDRESS: ivmctl stops owning it; the runtime is not touched.

    The object stays where it is. If it is still declared, the next plan offers to
    adopt it again; if not, it is listed as unmanaged and never deleted.

    \b
    Example:
      ivmctl state rm guest.web01 --yes
    """
    from ivmctl.core.inventory import forget, state_record

    backend = _backend(ctx)
    state_record(backend, address)  # refuse an unknown address before asking
    if not yes and not confirm(f"Forget {address}? The runtime is not changed."):
        click.echo("Not removed (confirm on a terminal, or pass --yes).", err=True)
        sys.exit(ExitStatus.ERROR)
    record = forget(backend, address, lock_timeout=lock_timeout)
    click.echo(f"Removed {record.address} from the state; it is no longer managed.")
