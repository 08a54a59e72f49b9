"""How errors look: location, summary, then what to do, on stderr."""

from __future__ import annotations

import sys

from ivmctl.errors import ErrorGroup, IvmctlError


def format_error(error: IvmctlError) -> str:
    """Plain text of an error: `error: file:line:col: address: summary` plus detail."""
    if isinstance(error, ErrorGroup):
        lines = [f"error: {error.summary}"]
        lines += [f"  {format_error(e).removeprefix('error: ')}" for e in error.errors]
        return "\n".join(lines)
    where = f"{error.location}: " if error.location and str(error.location) else ""
    text = f"error: {where}{error.summary}"
    if error.detail:
        text += f"\n  {error.detail}"
    return text


def print_error(error: IvmctlError) -> None:
    """Write an error to stderr, in red when stderr is a terminal."""
    text = format_error(error)
    if sys.stderr.isatty():
        from rich.console import Console

        Console(stderr=True, highlight=False).print(text, style="red", markup=False)
    else:
        print(text, file=sys.stderr)
