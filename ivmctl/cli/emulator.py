"""`ivmctl emulator ...`: provision emulated VM Hosts, run hpvm* commands on them, inject faults.

Every subcommand takes --path (default: $IVMCTL_EMULATOR, else .ivmctl/emulator.db under the
configuration directory given with -C, the same world the emulator provider uses).
`exec` prints what the emulated command printed and exits with its status.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ivmctl.errors import EmulatorError, RuleViolation
from ivmctl.rules import format_memory_display, parse_memory_mb
from ivmctl.runtime import World

DEFAULT_PATH = Path(".ivmctl") / "emulator.db"

path_option = click.option(
    "--path",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="IVMCTL_EMULATOR",
    default=None,
    help="The emulator's world (SQLite); env IVMCTL_EMULATOR. "
    "[default: DIR/.ivmctl/emulator.db, DIR from -C]",
)


def _open(path: Path | None, *, create: bool = False) -> World:
    if path is None:
        root = click.get_current_context().find_root().obj
        config_dir = getattr(root, "config_dir", Path("."))
        path = config_dir / DEFAULT_PATH
    return World.open(path, create=create)


@click.group()
def emulator() -> None:
    """Drive the bundled Integrity VM emulator.

    \b
    Example:
      ivmctl emulator host add vmhost01 --cores 8 --memory 64G --nics lan0,lan1
      ivmctl emulator exec vmhost01 -- hpvmstatus
    """


@emulator.group()
def host() -> None:
    """Provision, list and remove emulated VM Hosts.

    \b
    Example:
      ivmctl emulator host list
    """


@host.command("add")
@click.argument("name")
@click.option("--cores", type=click.IntRange(min=1), required=True, help="Physical cores.")
@click.option("--memory", required=True, help="Physical memory, e.g. 64G.")
@click.option("--nics", default="lan0", show_default=True, help="NICs, comma-separated.")
@click.option("--version", "version", default="6.3", show_default=True, help="Integrity VM.")
@click.option("--mhz", type=click.IntRange(min=1), default=1600, show_default=True)
@path_option
def host_add(
    name: str, cores: int, memory: str, nics: str, version: str, mhz: int, path: Path | None
) -> None:
    """Add a VM Host with its hardware (it starts with localnet only).

    \b
    Example:
      ivmctl emulator host add vmhost01 --cores 8 --memory 64G --nics lan0,lan1 --version 6.3
    """
    try:
        memory_mb = parse_memory_mb(memory)
    except RuleViolation as exc:
        raise EmulatorError(f"--memory: {exc.summary}", detail=exc.detail) from None
    with _open(path, create=True) as world:
        info = world.add_host(
            name=name,
            cores=cores,
            memory_mb=memory_mb,
            nics=tuple(n.strip() for n in nics.split(",") if n.strip()),
            version=version,
            mhz=mhz,
        )
    click.echo(
        f"host {info.name}: Integrity VM {info.version}, {info.cores} cores at {info.mhz} MHz, "
        f"{format_memory_display(info.memory_mb)}, NICs {','.join(info.nics) or '-'}"
    )


@host.command("list")
@path_option
def host_list(path: Path | None) -> None:
    """List the VM Hosts of the world.

    \b
    Example:
      ivmctl emulator host list
    """
    with _open(path) as world:
        hosts = world.hosts()
    click.echo(f"{'NAME':<16} {'VERSION':<8} {'CORES':>5} {'MEMORY':>8} {'MHZ':>5}  NICS")
    for h in hosts:
        click.echo(
            f"{h.name:<16} {h.version:<8} {h.cores:>5} {format_memory_display(h.memory_mb):>8} "
            f"{h.mhz:>5}  {','.join(h.nics)}"
        )


@host.command("remove")
@click.argument("name")
@path_option
def host_remove(name: str, path: Path | None) -> None:
    """Remove a VM Host (refused while it has guests).

    \b
    Example:
      ivmctl emulator host remove vmhost09
    """
    with _open(path) as world:
        world.remove_host(name)
    click.echo(f"host {name} removed")


@emulator.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("host_name", metavar="HOST")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@path_option
def exec_(host_name: str, command: tuple[str, ...], path: Path | None) -> None:
    """Run an hpvm* command line on HOST and print what it prints.

    \b
    Example:
      ivmctl emulator exec vmhost01 -- hpvmstatus -M
      ivmctl emulator exec vmhost01 -- hpvmmodify -P web01 -e 40
    """
    with _open(path) as world:
        result = world.execute(host_name, list(command))
    sys.stdout.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.write(result.stderr)
    sys.exit(result.exit_code)


@emulator.command("log")
@click.argument("host_name", metavar="HOST")
@path_option
def log(host_name: str, path: Path | None) -> None:
    """Show HOST's command log: time, exit status, command line.

    \b
    Example:
      ivmctl emulator log vmhost01
    """
    import shlex
    import time

    with _open(path) as world:
        entries = world.log(host_name)
    for e in entries:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.time))
        click.echo(f"{stamp} {e.exit_code:>3} {shlex.join(e.argv)}")


def _seconds(items: tuple[str, ...], option: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        kind, sep, value = item.partition("=")
        try:
            out[kind.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not kind.strip():
            raise EmulatorError(f"{option} expects KIND=SECONDS, e.g. hpvmstart=2, got {item!r}")
    return out


@emulator.command("faults")
@click.argument("host_name", metavar="HOST", required=False)
@click.option("--fail-starts", type=click.IntRange(min=0), help="Fail the next N starts.")
@click.option("--abort-migration", is_flag=True, help="Abort the next migration from HOST.")
@click.option("--unreachable/--reachable", default=None, help="Make HOST (un)reachable.")
@click.option("--latency", multiple=True, help="KIND=SECONDS added to every KIND command.")
@click.option("--hang", multiple=True, help="KIND=SECONDS: the next KIND command hangs.")
@click.option("--boot-delay", type=float, help="Seconds a start spends in On (EFI).")
@click.option("--unpresent", multiple=True, help="Make a storage path vanish from HOST.")
@click.option("--present", multiple=True, help="Undo --unpresent.")
@click.option("--clear", is_flag=True, help="Remove every fault first.")
@click.option("--list", "list_", is_flag=True, help="Show the faults of every host.")
@path_option
def faults(
    host_name: str | None,
    fail_starts: int | None,
    abort_migration: bool,
    unreachable: bool | None,
    latency: tuple[str, ...],
    hang: tuple[str, ...],
    boot_delay: float | None,
    unpresent: tuple[str, ...],
    present: tuple[str, ...],
    clear: bool,
    list_: bool,
    path: Path | None,
) -> None:
    """Inject faults and latency on HOST, or --list them.

    \b
    Example:
      ivmctl emulator faults vmhost01 --fail-starts 1
      ivmctl emulator faults vmhost01 --latency start=1.0
      ivmctl emulator faults --list
    """
    with _open(path) as world:
        changing = any(
            [fail_starts is not None, abort_migration, unreachable is not None, latency, hang,
             boot_delay is not None, unpresent, present, clear]
        )  # fmt: skip
        if changing:
            if host_name is None:
                raise EmulatorError("faults: name the HOST to change")
            world.set_faults(
                host_name,
                fail_starts=fail_starts,
                abort_migrations=1 if abort_migration else None,
                unreachable=unreachable,
                boot_delay=boot_delay,
                latency=_seconds(latency, "--latency"),
                hangs=_seconds(hang, "--hang"),
                unpresent=unpresent,
                present=present,
                clear=clear,
            )
        elif not list_ and host_name is None:
            raise EmulatorError("faults: give a HOST and a fault option, or --list")
        infos = world.faults(None if list_ else host_name)
    for f in infos:
        lat = ",".join(f"{k}={v:g}" for k, v in f.latency.items()) or "-"
        hangs = ",".join(f"{k}={v:g}" for k, v in f.hangs.items()) or "-"
        click.echo(
            f"{f.host}: fail_starts={f.fail_starts} abort_migrations={f.abort_migrations} "
            f"unreachable={'yes' if f.unreachable else 'no'} boot_delay={f.boot_delay:g} "
            f"latency={lat} hangs={hangs} unpresented={','.join(f.unpresented) or '-'}"
        )
