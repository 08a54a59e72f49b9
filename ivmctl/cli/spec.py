"""`ivmctl validate` and `ivmctl fmt`: check and tidy the configuration files.

validate exits 0 when the configuration is valid and 1 with every problem listed
otherwise; `--json` prints a versioned report on stdout instead (format_version 1).
fmt rewrites files in canonical style; `--check` only reports (exit 1 if any file would
change) and `--diff` prints the changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from ivmctl.cli import CliContext
from ivmctl.cli.common import parse_vars, variable_options
from ivmctl.errors import IvmctlError, Location, PluginError, SpecError
from ivmctl.model import DesiredState
from ivmctl.spec import InvalidConfig, LoadResult, SpecOptions, SpecWarning, load_spec

JSON_FORMAT_VERSION = 1


def options_from(
    ctx: CliContext,
    variables: tuple[str, ...],
    var_files: tuple[Path, ...],
    filters: Mapping[str, Callable[..., Any]] | None = None,
) -> SpecOptions:
    """SpecOptions for a command run: variables, environment, plugin filters, cache."""
    return SpecOptions(
        variables=parse_vars(variables),
        var_files=var_files,
        environ=ctx.environ,
        filters=dict(filters or {}),
        cache_dir=ctx.config_dir / ".ivmctl" / "cache",
    )


def policy_errors(pm: Any, desired: DesiredState) -> list[IvmctlError]:
    """The `validate_desired` plugins' objections, each at the file:line of its object."""
    from ivmctl.providers.manager import validate_desired

    errors: list[IvmctlError] = []
    for problem in validate_desired(pm, desired):
        source = desired.sources.get(problem.address) if problem.address else None
        location = source or Location(address=problem.address or None)
        who = f"[{problem.plugin}] " if problem.plugin else ""
        errors.append(PluginError(f"{who}{problem.message}", location=location))
    return errors


def _location_json(location: Location | None) -> dict[str, Any]:
    loc = location or Location()
    return {
        "file": loc.file,
        "line": loc.line,
        "column": loc.column,
        "address": loc.address,
        "path": loc.path,
    }


def _error_json(error: IvmctlError) -> dict[str, Any]:
    return {
        "kind": type(error).__name__,
        "summary": error.summary,
        "detail": error.detail,
        "message": str(error),
        **_location_json(error.location),
    }


def _warning_json(warning: SpecWarning) -> dict[str, Any]:
    return {"summary": warning.summary, "message": str(warning), **_location_json(warning.location)}


def _summary(result: LoadResult) -> str:
    desired = result.desired
    vswitches = sum(len(h.vswitches) for h in desired.hosts.values())
    files = len(result.files)

    def count(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 'es' if word.endswith('h') else 's'}"

    return (
        f"The configuration is valid: {count(len(desired.hosts), 'host')}, "
        f"{count(vswitches, 'vswitch')}, {count(len(desired.guests), 'guest')} "
        f"({count(files, 'file')})."
    )


def _config_dir_option(function: Any) -> Any:
    """`-C DIR` after the subcommand too (`ivmctl validate -C DIR`), as before it."""
    return click.option(
        "-C",
        "--config-dir",
        "local_config_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Directory holding the *.yaml configuration (default: the global -C, or .).",
    )(function)


def _context(ctx: click.Context, local_config_dir: Path | None) -> CliContext:
    obj: CliContext = ctx.obj
    return obj if local_config_dir is None else replace(obj, config_dir=local_config_dir)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable report.")
@variable_options
@_config_dir_option
@click.pass_context
def validate(
    ctx: click.Context,
    as_json: bool,
    variables: tuple[str, ...],
    var_files: tuple[Path, ...],
    local_config_dir: Path | None,
) -> None:
    """Check the configuration and report every problem.

    \b
    Example:
      ivmctl -C examples/quickstart validate
    """
    from ivmctl.providers.manager import get_plugin_manager, template_filters

    obj = _context(ctx, local_config_dir)
    pm = get_plugin_manager()
    options = options_from(obj, variables, var_files, template_filters(pm))
    try:
        result = load_spec(obj.config_dir, options)
        policy = policy_errors(pm, result.desired)
        if policy:
            count = len(policy)
            raise InvalidConfig(
                f"the configuration is blocked by policy: {count} problem{'s' * (count != 1)}",
                policy,
                result.warnings,
            )
    except InvalidConfig as invalid:
        if as_json:
            report = {
                "format_version": JSON_FORMAT_VERSION,
                "valid": False,
                "errors": [_error_json(e) for e in invalid.errors],
                "warnings": [_warning_json(w) for w in invalid.warnings],
            }
            click.echo(json.dumps(report, indent=2))
            ctx.exit(1)
        for warning in invalid.warnings:
            click.echo(f"warning: {warning}", err=True)
        raise
    if as_json:
        desired = result.desired
        report = {
            "format_version": JSON_FORMAT_VERSION,
            "valid": True,
            "errors": [],
            "warnings": [_warning_json(w) for w in result.warnings],
            "digest": desired.digest,
            "files": list(result.files),
            "counts": {
                "hosts": len(desired.hosts),
                "vswitches": sum(len(h.vswitches) for h in desired.hosts.values()),
                "guests": len(desired.guests),
            },
        }
        click.echo(json.dumps(report, indent=2))
        return
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(_summary(result))


@click.command()
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if a file is not formatted.")
@click.option("--diff", "show_diff", is_flag=True, help="Print the changes as a unified diff.")
@_config_dir_option
@click.pass_context
def fmt(ctx: click.Context, check: bool, show_diff: bool, local_config_dir: Path | None) -> None:
    """Rewrite configuration files in canonical style (comments are kept).

    \b
    Example:
      ivmctl -C examples/quickstart fmt --check --diff
    """
    from ivmctl.spec.fmt import format_dir

    obj = _context(ctx, local_config_dir)
    if not obj.config_dir.is_dir():
        raise SpecError(f"{obj.config_dir}: configuration directory does not exist")
    try:
        results = format_dir(obj.config_dir)
    except OSError as exc:
        raise SpecError(f"cannot read the configuration: {exc}") from None
    problems = [r for r in results if r.error]
    changed = [r for r in results if r.changed]
    for result in changed:
        if show_diff:
            click.echo(result.diff(), nl=False)
        if not check:
            result.path.write_text(result.formatted or "", encoding="utf-8")
            click.echo(f"formatted {result.file}", err=True)
    for result in problems:
        click.echo(f"error: {result.error}", err=True)
    if check and changed:
        names = ", ".join(r.file for r in changed)
        raise SpecError(
            f"{len(changed)} file{'s' if len(changed) != 1 else ''} not formatted: {names}",
            detail="Run ivmctl fmt to format them.",
        )
    if problems:
        raise SpecError(f"{len(problems)} file(s) could not be formatted")
