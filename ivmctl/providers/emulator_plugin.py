"""The emulator provider's plugin: registered at every start-up, its code loaded on use.

Every command builds the plugin manager, and with it the built-in plugins; `validate`,
`fmt` or `state list` never build a provider. The hook lives here, apart from
`providers/emulator.py` (which brings in the hpvm provider, its parsers and transports,
about 80 ms of imports), and the factory imports that module only when a provider is
built.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivmctl.providers.base import ProviderInfo
from ivmctl.providers.hookspecs import hookimpl

if TYPE_CHECKING:
    from ivmctl.providers.emulator import EmulatorProvider

NAME = "emulator"


def create_provider(
    options: Mapping[str, Any], *, config_dir: Path, environ: Mapping[str, str]
) -> EmulatorProvider:
    """Build the emulator provider from the `provider:` options (ProviderFactory)."""
    from ivmctl.providers import emulator

    return emulator.create_provider(options, config_dir=config_dir, environ=environ)


@hookimpl
def register_providers() -> list[ProviderInfo]:
    return [
        ProviderInfo(
            name=NAME,
            factory=create_provider,
            description="Integrity VM Hosts emulated by ivmctl.runtime (SQLite world)",
        )
    ]
