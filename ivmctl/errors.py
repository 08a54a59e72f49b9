"""Typed errors shared by every layer.

An error is a summary (one sentence), a detail that says what to do next, and a
location (file:line:column and/or an object address). Only the CLI decides how an
error is coloured and which exit status it maps to.
"""

from __future__ import annotations

from collections.abc import Iterable

from ivmctl.values import frozen


@frozen
class Location:
    """Where a problem is: a file position, an object address, or both."""

    file: str | None = None
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    address: str | None = None  # e.g. "guest.web01"
    path: str | None = None  # dotted field path inside the object, e.g. "nics[0].vswitch"

    def __str__(self) -> str:
        parts: list[str] = []
        if self.file:
            pos = self.file
            if self.line is not None:
                pos += f":{self.line}"
                if self.column is not None:
                    pos += f":{self.column}"
            parts.append(pos)
        if self.address:
            parts.append(self.address)
        if self.path:
            parts.append(self.path)
        return ": ".join(parts)


class IvmctlError(Exception):
    """Base of every error ivmctl reports to a user."""

    def __init__(
        self, summary: str, *, detail: str | None = None, location: Location | None = None
    ) -> None:
        super().__init__(summary)
        self.summary = summary
        self.detail = detail
        self.location = location

    def __str__(self) -> str:
        where = str(self.location) if self.location else ""
        text = f"{where}: {self.summary}" if where else self.summary
        if self.detail:
            text += f" {self.detail}"
        return text


class ErrorGroup(IvmctlError):
    """Several independent problems reported together (validation reports all at once)."""

    def __init__(self, summary: str, errors: Iterable[IvmctlError]) -> None:
        self.errors: tuple[IvmctlError, ...] = tuple(errors)
        super().__init__(summary)

    def __str__(self) -> str:
        return "\n".join([self.summary, *(str(e) for e in self.errors)])


# --- desired state --------------------------------------------------------------------------
class SpecError(IvmctlError):
    """The desired-state configuration cannot be read or is invalid."""


class SchemaError(SpecError, ValueError):
    """A document does not match the JSON Schema."""


class TemplateError(SpecError):
    """A Jinja2 template failed to render."""


# --- domain rules ---------------------------------------------------------------------------
class RuleViolation(IvmctlError, ValueError):
    """A value breaks an Integrity VM rule (limits, names, units, admission)."""


class InsufficientResources(RuleViolation):
    """A guest cannot be admitted on a host: cores, entitlement or memory do not fit."""


# --- runtime (emulator) ---------------------------------------------------------------------
class EmulatorError(IvmctlError):
    """The emulator's world cannot be opened or used (missing, corrupt, newer version)."""


class CommandError(IvmctlError):
    """An hpvm* command failed; carries its exit status and output."""

    def __init__(
        self,
        summary: str,
        *,
        detail: str | None = None,
        location: Location | None = None,
        exit_code: int = 1,
        output: str = "",
    ) -> None:
        super().__init__(summary, detail=detail, location=location)
        self.exit_code = exit_code
        self.output = output


# --- plan / apply / state -------------------------------------------------------------------
class PlanError(IvmctlError):
    """The desired state cannot be reached by any safe plan (capacity, restart denied, ...)."""


class PlanFileError(IvmctlError, ValueError):
    """A saved plan cannot be used: wrong version, other configuration, stale, tampered."""


class StalePlanError(PlanFileError):
    """The runtime or the state changed since the plan was saved."""


class ProviderError(IvmctlError):
    """A provider failed to refresh, describe or execute a change."""


class HostUnreachable(ProviderError):
    """A VM Host did not answer (the connection failed, not a command)."""


class StateError(IvmctlError):
    """The state file cannot be read or written (corrupt, newer version)."""


class LockError(StateError):
    """The state is locked by another run."""


class PluginError(IvmctlError):
    """A plugin is misconfigured (unknown hook, duplicate provider) or a policy refused."""
