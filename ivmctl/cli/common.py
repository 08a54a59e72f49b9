"""Options and helpers shared by the commands that plan: variables, workspace, confirmation."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ivmctl.cli import CliContext
from ivmctl.errors import SpecError

F = TypeVar("F", bound=Callable[..., Any])


def parse_vars(pairs: tuple[str, ...]) -> dict[str, str]:
    """`--var NAME=VALUE` pairs as a mapping."""
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise SpecError(
                f"--var {pair!r} is not NAME=VALUE", detail="Write e.g. --var env=prod."
            )
        found[name.strip()] = value
    return found


def variable_options(function: F) -> F:
    """`--var` and `--var-file`, for every command that reads the configuration."""
    function = click.option(
        "--var-file",
        "var_files",
        multiple=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="YAML file of template variables (inside the config directory). Repeatable.",
    )(function)
    function = click.option(
        "--var",
        "variables",
        multiple=True,
        metavar="NAME=VALUE",
        help="Template variable. Repeatable. IVMCTL_VAR_<NAME> works too.",
    )(function)
    return function


def workspace(ctx: CliContext, variables: tuple[str, ...], var_files: tuple[Path, ...]) -> Any:
    """The core Workspace of this command run."""
    from ivmctl.core.session import Workspace

    return Workspace(
        config_dir=ctx.config_dir,
        environ=ctx.environ,
        variables=parse_vars(variables),
        var_files=tuple(var_files),
    )


def confirm(question: str, *, expected: str = "yes") -> bool:
    """Ask on the terminal; only the exact answer `expected` proceeds."""
    if not sys.stdin.isatty():
        return False
    answer = click.prompt(f"{question} Only '{expected}' will be accepted", default="",
                          show_default=False)  # fmt: skip
    return str(answer).strip() == expected


def write_atomically(path: Path, data: bytes) -> None:
    """Write a file so that a reader sees the old content or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
