"""Jinja2 templates in configuration files: sandboxed, strict, and only when needed.

A file is rendered only when it holds template syntax (`{{`, `{%` or `{#`), whatever its
name, so plain YAML costs nothing here. Rendering happens in Jinja2's
`SandboxedEnvironment` (no access to Python internals such as `''.__class__`) with
`StrictUndefined` (a misspelt variable is an error, never an empty string).

Variables, later sources winning: `IVMCTL_VAR_<name>` environment variables, then
`--var-file FILE` (YAML maps, in the order given; files must lie inside the configuration
directory), then `--var name=value`. Each variable is a template global, and all of them
are also in the `vars` mapping (`{{ vars.env }}`). Extra filters (plugins' `template_filters`
hook) come in through `filters`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any

ENV_PREFIX = "IVMCTL_VAR_"
_TEMPLATE_MARKERS = ("{{", "{%", "{#")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TemplateProblem(Exception):
    """A template could not be rendered: what, and the template line when known."""

    def __init__(self, summary: str, *, detail: str | None = None, line: int | None = None):
        super().__init__(summary)
        self.summary = summary
        self.detail = detail
        self.line = line


def is_template(text: str) -> bool:
    """Whether `text` holds template syntax and so must be rendered."""
    return any(marker in text for marker in _TEMPLATE_MARKERS)


def variable_name_problem(name: str) -> str | None:
    """Why `name` cannot be a template variable, or None."""
    if not _VAR_NAME.match(name):
        return f"variable name {name!r} must be letters, digits and _ (not starting with a digit)"
    return None


def environment_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """The `IVMCTL_VAR_<name>` entries of an environment, by name."""
    return {
        key[len(ENV_PREFIX) :]: value
        for key, value in sorted(environ.items())
        if key.startswith(ENV_PREFIX) and len(key) > len(ENV_PREFIX)
    }


class Renderer:
    """Renders the templated files of one configuration directory."""

    def __init__(
        self,
        variables: Mapping[str, Any],
        filters: Mapping[str, Callable[..., Any]] | None = None,
    ) -> None:
        self._sources: dict[str, str] = {}
        import jinja2  # here, not at the top: most configurations have no template
        from jinja2.sandbox import SandboxedEnvironment

        self.env = SandboxedEnvironment(
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
            cache_size=0,  # the loader serves the text being rendered; never reuse
            loader=jinja2.FunctionLoader(self._load),
        )
        self.env.filters.update(filters or {})
        self.env.globals.update(variables)
        self.env.globals["vars"] = dict(variables)

    def _load(self, name: str) -> tuple[str, str, Callable[[], bool]] | None:
        source = self._sources.get(name)
        return None if source is None else (source, name, lambda: True)

    def render(self, name: str, text: str) -> str:
        """Render `text` (the file `name`); raise TemplateProblem naming the template line."""
        import jinja2

        self._sources[name] = text
        try:
            template = self.env.get_template(name)
            return template.render()
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateProblem(
                f"template syntax error: {exc.message}", line=exc.lineno
            ) from None
        except jinja2.exceptions.SecurityError as exc:
            raise _sandbox_problem(str(exc), exc.__traceback__, name) from None
        except jinja2.UndefinedError as exc:
            message = str(exc.message or exc)
            if "unsafe" in message:
                raise _sandbox_problem(message, exc.__traceback__, name) from None
            raise TemplateProblem(
                f"undefined template variable: {message}",
                detail="Pass it with --var NAME=VALUE, --var-file or IVMCTL_VAR_NAME.",
                line=_template_line(exc.__traceback__, name),
            ) from None
        except jinja2.TemplateError as exc:
            raise TemplateProblem(
                f"template error: {exc}", line=_template_line(exc.__traceback__, name)
            ) from None
        except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as exc:
            raise TemplateProblem(
                f"template error: {type(exc).__name__}: {exc}",
                line=_template_line(exc.__traceback__, name),
            ) from None


def _sandbox_problem(message: str, tb: TracebackType | None, name: str) -> TemplateProblem:
    return TemplateProblem(
        f"template tries to reach Python internals, which the sandbox forbids ({message})",
        detail="Templates may use variables, loops and filters only.",
        line=_template_line(tb, name),
    )


def _frames(tb: TracebackType | None) -> Iterator[TracebackType]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def _template_line(tb: TracebackType | None, name: str) -> int | None:
    """The template line of the innermost frame Jinja2 mapped back to the template."""
    line = None
    for frame in _frames(tb):
        if frame.tb_frame.f_code.co_filename == name:
            line = frame.tb_lineno
    return line
