"""Helpers of the import/export/state tests: sessions, the runtime generation, plans."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ivmctl.core.session import Session, Workspace

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"

Ivmctl = Callable[..., tuple[int, str, str]]


def session_for(config_dir: Path) -> Session:
    return Session(Workspace(config_dir=config_dir, environ={}))


def apply_all(config_dir: Path) -> None:
    """Plan and apply the configuration of `config_dir`; the apply must succeed."""
    with session_for(config_dir) as session:
        result = session.apply(session.plan())
    assert result.ok, result


def generation(config_dir: Path) -> str:
    """The emulator world's change counter: equal means the runtime was not touched."""
    with session_for(config_dir) as session:
        desired, _ = session.load()
        return str(session.provider(desired.provider).generation())


def actionable(config_dir: Path) -> list[tuple[str, str]]:
    """(address, action) of every change the next plan would make."""
    with session_for(config_dir) as session:
        plan = session.plan().plan
    return [(c.address, c.action.value) for c in plan.actionable]
