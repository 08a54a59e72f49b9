"""`ivmctl init`, `drift`, `reconcile` and `completion`: the first hour and the pipeline.

`init` writes a new configuration directory; `drift` refreshes only and reports where
the runtime left the configuration; `reconcile` is the GitOps loop (the logic lives in
ivmctl.core.reconcile); `completion` prints click's shell completion script.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import click

from ivmctl.cli import CliContext, ExitStatus
from ivmctl.cli.common import variable_options, workspace
from ivmctl.errors import IvmctlError


class InitError(IvmctlError):
    """`ivmctl init` cannot write the new configuration directory."""


# --------------------------------------------------------------------------------------------
# init
@click.command(name="init")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.pass_obj
def init(ctx: CliContext, directory: Path | None) -> None:
    """Start a new configuration directory DIRECTORY (default: the -C directory, or here).

    Writes ivmctl.yaml (a commented example that validates and plans as written),
    schemas/ivmctl-v1.schema.json (for editors and check-jsonschema; the example's
    yaml-language-server modeline points at it) and a .gitignore for .ivmctl/.
    Existing files are never overwritten.

    \b
    Example:
      ivmctl init fleet && cd fleet && ivmctl plan
    """
    from importlib import resources

    from ivmctl import templates
    from ivmctl.spec import config_files
    from ivmctl.spec.schema import SCHEMA_FILE

    target = directory if directory is not None else ctx.config_dir
    schema_rel = f"{templates.SCHEMA_DIR}/{SCHEMA_FILE}"
    files = {
        templates.CONFIG_FILE: templates.CONFIG.format(schema=schema_rel),
        templates.GITIGNORE_FILE: templates.GITIGNORE,
        # the shipped file as it is, so a vendored copy diffs cleanly against a new release
        schema_rel: resources.files("ivmctl").joinpath("schemas", SCHEMA_FILE).read_text("utf-8"),
    }
    if target.exists() and not target.is_dir():
        raise InitError(f"{target} exists and is not a directory", detail="Choose another path.")
    existing = sorted(name for name in files if (target / name).exists())
    if existing:
        raise InitError(
            f"{target} already has {', '.join(existing)}; ivmctl init never overwrites files",
            detail="Run it in an empty directory (ivmctl init NEWDIR), or move those files away.",
        )
    configs = [p.name for p in config_files(target)] if target.is_dir() else []
    if configs:
        raise InitError(
            f"{target} already holds configuration ({', '.join(configs)})",
            detail="Its files would be merged with the example. Use an empty directory.",
        )
    try:
        for name, text in files.items():
            path = target / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as handle:
                handle.write(text)
    except OSError as exc:
        raise InitError(f"cannot write {target}: {exc.strerror or exc}",
                        detail="Check the path and its permissions.") from None  # fmt: skip
    for name in files:
        click.echo(f"Created {target / name}")
    click.echo("")
    click.echo(templates.next_steps(str(target)))


# --------------------------------------------------------------------------------------------
# drift
@click.command(name="drift")
@variable_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as versioned JSON.")
@click.pass_obj
def drift(
    ctx: CliContext, variables: tuple[str, ...], var_files: tuple[Path, ...], as_json: bool
) -> None:
    """Report objects whose actual state left the declared one (refresh only).

    Nothing is changed. Differences are told apart: drift (the runtime changed outside
    ivmctl since the configuration was applied), configuration changes not applied yet,
    and ignored fields (lifecycle.ignore_changes, which do not count).
    Exit status: 0 no drift, 2 drift or unapplied changes, 1 error.

    \b
    Examples:
      ivmctl drift
      ivmctl drift --json > drift.json   # in a scheduled pipeline
    """
    from ivmctl.core.drift import drift_report
    from ivmctl.core.session import PlanOptions, Session
    from ivmctl.render.drift import print_drift

    with Session(workspace(ctx, variables, var_files)) as session:
        report = drift_report(session.plan(PlanOptions(refresh_only=True)))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        print_drift(report)
    if report.has_drift:
        raise SystemExit(ExitStatus.CHANGES)


# --------------------------------------------------------------------------------------------
# reconcile
class _StopOnSignal:
    """SIGTERM / SIGINT: finish the current cycle, then stop. A second one aborts."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopOnSignal:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        print(
            f"ivmctl: {signal.Signals(signum).name}: stopping after the current cycle "
            "(send it again to abort at once).",
            file=sys.stderr,
            flush=True,
        )


@click.command(name="reconcile")
@variable_options
@click.option("--interval", default=60.0, show_default=True, type=click.FloatRange(min=0.1),
              metavar="SECONDS", help="Seconds between scheduled plans.")  # fmt: skip
@click.option("--auto-approve-safe", "apply_safe", is_flag=True,
              help="Apply safe changes (no restart, migration, replacement or deletion). "
              "Without it, reconcile only reports what it would apply.")  # fmt: skip
@click.option("--allow-all", is_flag=True,
              help="With --auto-approve-safe: also apply restarts, migrations, "
              "replacements and deletions.")  # fmt: skip
@click.option("--once", is_flag=True, help="Run one cycle and exit (same as --max-cycles 1).")
@click.option("--max-cycles", type=click.IntRange(min=1), metavar="N",
              help="Stop after N cycles.")  # fmt: skip
@click.option("--lock-timeout", default=0.0, show_default=True, type=click.FloatRange(0),
              metavar="SECONDS", help="Wait this long for another run's state lock.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Log each cycle as one JSON object.")
@click.pass_obj
def reconcile(
    ctx: CliContext,
    variables: tuple[str, ...],
    var_files: tuple[Path, ...],
    interval: float,
    apply_safe: bool,
    allow_all: bool,
    once: bool,
    max_cycles: int | None,
    lock_timeout: float,
    as_json: bool,
) -> None:
    """Re-plan on a schedule and when the configuration changes; apply safe changes.

    Each cycle plans, applies the safe changes (with --auto-approve-safe) and logs one
    line (one JSON object with --json). Safe means create, online update, start, stop
    and adopt; restarts, migrations, replacements and deletions are held back and
    logged unless --allow-all. SIGTERM or Ctrl-C stops after the current cycle.
    Exit status: 0, or 1 when the last cycle failed.

    \b
    Examples:
      ivmctl reconcile --interval 60 --auto-approve-safe
      ivmctl reconcile --once --json      # one cycle, report only
    """
    from ivmctl.core.reconcile import CycleReport, ReconcileOptions, Reconciler

    if allow_all and not apply_safe:
        raise click.UsageError("--allow-all only makes sense with --auto-approve-safe")

    def log(report: CycleReport) -> None:
        text = json.dumps(report.to_dict(), sort_keys=True) if as_json else report.line()
        click.echo(text)
        sys.stdout.flush()

    options = ReconcileOptions(
        interval=interval,
        apply=apply_safe,
        allow_all=allow_all,
        max_cycles=1 if once else max_cycles,
        poll=min(1.0, interval),
        lock_timeout=lock_timeout,
    )
    stop = threading.Event()
    reconciler = Reconciler(workspace(ctx, variables, var_files), options, on_cycle=log, stop=stop)
    with _StopOnSignal(stop):
        reports = reconciler.run()
    if not reports or not reports[-1].ok:
        raise SystemExit(ExitStatus.ERROR)


# --------------------------------------------------------------------------------------------
# completion
SHELLS = ("bash", "zsh", "fish")


@click.command(name="completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    \b
    Examples:
      ivmctl completion bash > ~/.local/share/bash-completion/completions/ivmctl
      ivmctl completion zsh > "${fpath[1]}/_ivmctl"
      ivmctl completion fish > ~/.config/fish/completions/ivmctl.fish
    """
    from click.shell_completion import get_completion_class

    from ivmctl.cli import cli

    completion_class = get_completion_class(shell)
    assert completion_class is not None  # every name in SHELLS is one click ships
    script = completion_class(cli, {}, "ivmctl", "_IVMCTL_COMPLETE").source()
    click.echo(script)
