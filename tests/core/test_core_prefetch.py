"""A plan has the provider read the declared hosts while the guests load (`prefetch`)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from ivmctl import model
from ivmctl.core.session import Session, Workspace
from ivmctl.providers.emulator import EmulatorProvider

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
IGNORE = shutil.ignore_patterns(".ivmctl")


def test_a_plan_prefetches_the_declared_hosts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(QUICKSTART, tmp_path, dirs_exist_ok=True, ignore=IGNORE)
    asked: list[list[str]] = []
    prefetch = EmulatorProvider.prefetch

    def recording(self: EmulatorProvider, hosts: Sequence[str]) -> None:
        asked.append(list(hosts))
        prefetch(self, hosts)

    monkeypatch.setattr(EmulatorProvider, "prefetch", recording)
    with Session(Workspace(config_dir=tmp_path, environ={})) as session:
        planned = session.plan()
    assert asked == [sorted(planned.desired.hosts)] == [["vmhost01"]]
    assert planned.plan.actionable  # and the plan goes on as without it


def test_a_provider_for_another_configuration_replaces_the_first(tmp_path: Path) -> None:
    with Session(Workspace(config_dir=tmp_path, environ={})) as session:
        first = session.provider(model.ProviderConfig(options={"path": "a.db"}))
        assert session.provider(model.ProviderConfig(options={"path": "a.db"})) is first
        second = session.provider(model.ProviderConfig(options={"path": "b.db"}))
        assert second is not first
        assert second.options.path == tmp_path / "b.db"
