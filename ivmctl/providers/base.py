"""The provider contract: what a provider plugin offers and the small values it exchanges.

A provider is the one piece of ivmctl that talks to VM Hosts. It reads the actual state
(`refresh`, `read_guest`), turns one planned Operation into native Steps (`steps`, pure:
`plan --commands` and `apply` share it), runs a step (`execute`) and, where it can,
provisions hosts (`ensure_host`). Plugins register providers through the
`register_providers` hook with a ProviderInfo whose `factory` builds one from the
`provider:` block of the configuration.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ivmctl import model
from ivmctl.errors import IvmctlError
from ivmctl.plan.model import Operation
from ivmctl.values import frozen


@frozen
class Capabilities:
    """What a provider can do beyond the common contract.

    `online_fields` are the guest fields (dotted paths as in the desired-state format)
    that change on a running guest; every other field needs the guest Off.
    """

    can_provision_hosts: bool = False
    online_fields: frozenset[str] = frozenset()


@frozen
class Step:
    """One native command on one host: the unit a provider executes.

    `argv` is an argument list that is never given to a shell; `command_line` quotes it
    for display only (`plan --commands`, logs).
    """

    host: str
    argv: tuple[str, ...]
    description: str

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("a step needs a command")

    @property
    def command_line(self) -> str:
        return shlex.join(self.argv)


@frozen
class StepResult:
    """What running a step produced: exit status, output and wall-clock seconds."""

    step: Step
    exit_code: int
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def output(self) -> str:
        """Everything the command printed, stdout then stderr."""
        return "\n".join(part.rstrip("\n") for part in (self.stdout, self.stderr) if part)


@frozen
class Problem:
    """A policy problem found by a plugin: the object it concerns and why.

    `plugin` is filled in by the plugin manager with the name of the plugin that
    reported it, so a message always says who refused.
    """

    address: str
    message: str
    plugin: str = ""

    def __str__(self) -> str:
        who = f"[{self.plugin}] " if self.plugin else ""
        where = f"{self.address}: " if self.address else ""
        return f"{who}{where}{self.message}"

    @classmethod
    def from_error(cls, error: IvmctlError, *, plugin: str = "") -> Problem:
        address = error.location.address if error.location and error.location.address else ""
        message = error.summary + (f" {error.detail}" if error.detail else "")
        return cls(address=address, message=message, plugin=plugin)


class ProviderFactory(Protocol):
    """Builds a provider from the options of the `provider:` block."""

    def __call__(
        self, options: Mapping[str, Any], *, config_dir: Path, environ: Mapping[str, str]
    ) -> Provider: ...


@frozen
class ProviderInfo:
    """What `register_providers` returns: a provider's name, how to build it, what it is."""

    name: str
    factory: ProviderFactory
    description: str = ""
    plugin: str = field(default="", compare=False)  # filled in by the plugin manager


@runtime_checkable
class Provider(Protocol):
    """The contract every provider honours.

    * `capabilities`: what it can do (provision hosts? which fields change online?).
    * `refresh(hosts)`: the actual state of the named hosts, one read pass per host.
      Hosts the provider does not know are absent from `ActualState.hosts`.
    * `steps(operation)`: the native steps of one operation, in order. Pure: it runs
      nothing, so showing the commands and running them are the same code. Raises
      ProviderError for an operation it cannot express.
    * `execute(step)`: run one step; a command that fails is a StepResult with a
      non-zero exit code, not an exception. ProviderError only when the host cannot be
      reached at all.
    * `read_guest(host, name)`: re-read one guest after a change (None when it is not
      there), so apply can verify the result.
    * `ensure_host(host)`: make a declared host exist. Providers that cannot provision
      check that it exists; a host whose hardware differs from the declared one is a
      ProviderError (hardware cannot be changed by software).
    * `generation()`: an opaque token that changes whenever the runtime changes, for
      stale-plan checks.
    * `close()`: release connections; the provider is not used afterwards.
    """

    @property
    def capabilities(self) -> Capabilities: ...

    def refresh(self, hosts: Sequence[str]) -> model.ActualState: ...

    def steps(self, operation: Operation) -> tuple[Step, ...]: ...

    def execute(self, step: Step) -> StepResult: ...

    def read_guest(self, host: str, name: str) -> model.ActualGuest | None: ...

    def ensure_host(self, host: model.Host) -> None: ...

    def generation(self) -> str: ...

    def close(self) -> None: ...
