"""The command line: the only module that imports click and the only one that exits.

Subcommands live in sibling modules and are imported lazily, so `ivmctl --help`
and quick commands do not pay for the planner, the emulator or rich.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import sys
import threading
from enum import IntEnum
from pathlib import Path
from typing import Any, NoReturn

import click

from ivmctl import __version__
from ivmctl.errors import IvmctlError
from ivmctl.values import frozen


class ExitStatus(IntEnum):
    """Every exit status ivmctl uses, in one place (docs/cli.md lists them)."""

    OK = 0
    ERROR = 1  # anything went wrong; the message says what
    CHANGES = 2  # plan --detailed-exitcode / drift: there is something to do
    USAGE = 64  # a mistyped command, option or argument (EX_USAGE)
    OUTPUT_LOST = 120  # the output could not be written at exit (as Python's own exit)
    INTERRUPTED = 130


@frozen
class CliContext:
    """What every subcommand receives: the config directory and global switches."""

    config_dir: Path
    debug: bool
    environ: dict[str, str]


# name -> ("module:attribute", one-line help). A command's module is imported only when
# that command runs; `ivmctl --help` reads the help text from this table.
HELP_OPTION_NAMES = ["-h", "--help"]  # every command inherits them from the root

COMMANDS: dict[str, tuple[str, str]] = {
    "emulator": ("ivmctl.cli.emulator:emulator", "Drive the bundled Integrity VM emulator."),
    "validate": ("ivmctl.cli.spec:validate", "Check the configuration and report every problem."),
    "fmt": ("ivmctl.cli.spec:fmt", "Rewrite configuration files in canonical style."),
    "providers": ("ivmctl.cli.providers:providers", "List installed providers and plugins."),
    "plan": ("ivmctl.cli.plan:plan", "Show what apply would change, and why."),
    "show": ("ivmctl.cli.plan:show", "Show a saved plan."),
    "graph": ("ivmctl.cli.plan:graph", "Print the plan's change graph (DOT)."),
    "apply": ("ivmctl.cli.apply:apply", "Apply the configuration, or exactly a saved plan."),
    "destroy": ("ivmctl.cli.apply:destroy", "Delete everything ivmctl owns."),
    "status": ("ivmctl.cli.status:status", "Show hosts, capacity in use, guests and drift."),
    "force-unlock": ("ivmctl.cli.status:force_unlock", "Remove a state lock left behind."),
    "init": ("ivmctl.cli.gitops:init", "Start a new configuration directory."),
    "drift": ("ivmctl.cli.gitops:drift", "Report objects that left their declared state."),
    "reconcile": ("ivmctl.cli.gitops:reconcile", "Re-plan and apply safe changes on a schedule."),
    "completion": ("ivmctl.cli.gitops:completion", "Print shell completion for bash, zsh or fish."),
    "import": ("ivmctl.cli.inventory:import_", "Adopt one existing object (guest.NAME)."),
    "export": ("ivmctl.cli.inventory:export", "Write YAML for what the runtime has."),
    "state": ("ivmctl.cli.inventory:state", "List and show what ivmctl owns."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module_name, attr = COMMANDS[cmd_name][0].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": HELP_OPTION_NAMES})
@click.option(
    "-C",
    "--config-dir",
    "config_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="Directory holding the *.yaml configuration.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(__version__, prog_name="ivmctl")
@click.pass_context
def cli(ctx: click.Context, config_dir: Path, debug: bool) -> None:
    """Declarative infrastructure-as-code for HP Integrity Virtual Machines.

    \b
    Example:
      ivmctl -C examples/quickstart plan
    """
    ctx.obj = CliContext(config_dir=config_dir, debug=debug, environ=dict(os.environ))


def fail(error: IvmctlError, *, debug: bool = False) -> NoReturn:
    """Print an ivmctl error the way users see every error, then exit 1."""
    from ivmctl.render.errors import print_error

    print_error(error)
    if debug:
        raise error
    sys.exit(ExitStatus.ERROR)


def console() -> NoReturn:
    """The `ivmctl` executable (and `python -m ivmctl`): `main`, in a process that ends
    with the command, so what the collector-paused blocks built is frozen rather than
    walked again (`collector.freeze_after_pauses`), and the process ends without freeing
    it (`exit_now`)."""
    from ivmctl.collector import freeze_after_pauses

    freeze_after_pauses()
    try:
        main()
    except SystemExit as done:
        exit_now(done.code)
    exit_now(ExitStatus.OK)


def exit_now(code: object) -> NoReturn:
    """Exit with `code` (as `sys.exit` takes it) without the interpreter's shutdown, which
    frees every object one by one: about 0.05 s after a 10,000-guest plan (mypy exits so
    too). What a normal exit does that matters still happens: exit handlers run (a
    plugin's `atexit`, `weakref.finalize`, logging's flush), then standard output and
    error are flushed; a flush that fails is exit 120, as in Python's own shutdown. While
    a thread other than daemons runs, the process exits as usual, waiting for it."""
    from ivmctl.runtime import spare

    spare.discard()  # a spare worker nobody took (`ivmctl.entry`)
    if any(not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)  # type: ignore[arg-type]  # whatever sys.exit was given
    if code is None:
        status = ExitStatus.OK.value
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): printed, exit 1
        with contextlib.suppress(OSError, ValueError, AttributeError):
            print(code, file=sys.stderr)
        status = ExitStatus.ERROR.value
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe (`ivmctl plan | head`) or stream
            status = ExitStatus.OUTPUT_LOST.value
    os._exit(status)


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point: runs a command and maps every outcome to an ExitStatus.

    Usage mistakes exit 64, not 2, so that `plan --detailed-exitcode` and `drift` can use
    2 for "there are changes" without a pipeline mistaking a typo for drift.
    """
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        # Without standalone mode click returns the code of ctx.exit(N) instead of exiting.
        code = cli.main(args=args, prog_name="ivmctl", standalone_mode=False)
    except IvmctlError as error:
        fail(error, debug=debug)
    except click.UsageError as error:
        error.show()
        sys.exit(ExitStatus.USAGE)
    except click.ClickException as error:
        error.show()
        sys.exit(ExitStatus.ERROR)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except (click.Abort, KeyboardInterrupt):
        print("ivmctl: interrupted.", file=sys.stderr)
        sys.exit(ExitStatus.INTERRUPTED)
    sys.exit(code if isinstance(code, int) else ExitStatus.OK)
