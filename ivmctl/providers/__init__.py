"""Providers and plugins: the hook specifications, the plugin manager, the provider contract.

A plugin is a module (or object) with functions decorated by `hookimpl`, installed under
the entry-point group `ivmctl`; see docs/plugins.md. The built-in emulator provider is
one such plugin.
"""

from __future__ import annotations

from ivmctl.providers.base import (
    Capabilities,
    Problem,
    Provider,
    ProviderFactory,
    ProviderInfo,
    Step,
    StepResult,
)
from ivmctl.providers.hookspecs import hookimpl, hookspec

__all__ = [
    "Capabilities",
    "Problem",
    "Provider",
    "ProviderFactory",
    "ProviderInfo",
    "Step",
    "StepResult",
    "hookimpl",
    "hookspec",
]
