"""`ivmctl validate` and `ivmctl fmt`: check and tidy the configuration files.

validate exits 0 when the configuration is valid and 1 with every problem listed
otherwise; `--json` prints a versioned report on stdout instead (format_version 1).
fmt rewrites files in canonical style; `--check` only reports (exit 1 if any file would
change) and `--diff` prints the changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ivmctl.cli import CliContext
from ivmctl.errors import IvmctlError, Location, SpecError
from ivmctl.spec import InvalidConfig, LoadResult, SpecOptions, SpecWarning, load_spec

JSON_FORMAT_VERSION = 1


def _parse_vars(pairs: tuple[str, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SpecError(
                f"--var {pair!r} is not NAME=VALUE", detail="Write e.g. --var env=prod."
            )
        found[name.strip()] = value
    return found


def options_from(
    ctx: CliContext, variables: tuple[str, ...], var_files: tuple[Path, ...]
) -> SpecOptions:
    """SpecOptions for a command run (also used by plan/apply through this module)."""
    return SpecOptions(
        variables=_parse_vars(variables),
        var_files=var_files,
        environ=ctx.environ,
        cache_dir=ctx.config_dir / ".ivmctl" / "cache",
    )


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


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable report.")
@click.option(
    "--var",
    "variables",
    multiple=True,
    metavar="NAME=VALUE",
    help="Set a template variable (repeatable).",
)
@click.option(
    "--var-file",
    "var_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read template variables from a YAML file in the configuration directory.",
)
@click.pass_context
def validate(
    ctx: click.Context, as_json: bool, variables: tuple[str, ...], var_files: tuple[Path, ...]
) -> None:
    """Check the configuration and report every problem.

    \b
    Example:
      ivmctl -C examples/quickstart validate
    """
    obj: CliContext = ctx.obj
    options = options_from(obj, variables, var_files)
    try:
        result = load_spec(obj.config_dir, options)
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
@click.pass_context
def fmt(ctx: click.Context, check: bool, show_diff: bool) -> None:
    """Rewrite configuration files in canonical style (comments are kept).

    \b
    Example:
      ivmctl -C examples/quickstart fmt --check --diff
    """
    from ivmctl.spec.fmt import format_dir

    obj: CliContext = ctx.obj
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
