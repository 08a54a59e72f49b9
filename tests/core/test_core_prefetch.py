"""A plan has the provider read the declared hosts while the guests load (`prefetch`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from ivmctl import model
from ivmctl.core.session import Session, Workspace
from ivmctl.providers.emulator import EmulatorProvider

CONFIG = """apiVersion: ivmctl/v1
hosts:
  vmhost02:
    hardware: {cores: 8, memory: 64G, nics: [lan0]}
  vmhost01:
    hardware: {cores: 8, memory: 64G, nics: [lan0]}
guests:
  web01:
    host: vmhost01
    memory: 4G
"""


def test_a_plan_prefetches_the_declared_hosts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fleet.yaml").write_text(CONFIG)
    asked: list[list[str]] = []
    prefetch = EmulatorProvider.prefetch

    def recording(self: EmulatorProvider, hosts: Sequence[str]) -> None:
        asked.append(list(hosts))
        prefetch(self, hosts)

    monkeypatch.setattr(EmulatorProvider, "prefetch", recording)
    with Session(Workspace(config_dir=tmp_path, environ={})) as session:
        planned = session.plan()
    assert asked == [["vmhost01", "vmhost02"]]
    assert "guest.web01" in {c.address for c in planned.plan.actionable}


def test_a_provider_for_another_configuration_replaces_the_first(tmp_path: Path) -> None:
    with Session(Workspace(config_dir=tmp_path, environ={})) as session:
        first = session.provider(model.ProviderConfig(options={"path": "a.db"}))
        assert session.provider(model.ProviderConfig(options={"path": "a.db"})) is first
        second = session.provider(model.ProviderConfig(options={"path": "b.db"}))
        assert second is not first
        assert second.options.path == tmp_path / "b.db"
