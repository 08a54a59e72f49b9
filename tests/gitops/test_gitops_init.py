"""`ivmctl init`: a new directory that validates, plans and applies, and never overwrites."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ivmctl.spec.schema import load_schema

ROOT = Path(__file__).resolve().parents[2]


def test_init_writes_a_commented_example_that_validates_plans_and_applies(
    ivmctl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ran = ivmctl("init", "fleet")
    assert "Created fleet/ivmctl.yaml" in ran.out
    assert "Next steps:\n  cd fleet\n  ivmctl validate" in ran.out
    config = (tmp_path / "fleet" / "ivmctl.yaml").read_text()
    assert config.count("\n#") >= 5  # commented for a first reader
    monkeypatch.chdir(tmp_path / "fleet")
    ivmctl("validate")
    ivmctl("fmt", "--check")  # a new user's first pre-commit run passes
    assert "Plan: 3 to add" in ivmctl("plan").out
    ivmctl("apply", "--auto-approve")
    assert "No changes." in ivmctl("plan", "--detailed-exitcode").out


def test_init_modeline_points_at_the_shipped_schema_written_next_to_it(
    ivmctl, tmp_path: Path
) -> None:
    ivmctl("init", str(tmp_path / "new"))
    first = (tmp_path / "new" / "ivmctl.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=schemas/ivmctl-v1.schema.json"
    written = (tmp_path / "new" / "schemas" / "ivmctl-v1.schema.json").read_text()
    assert json.loads(written) == load_schema()
    assert written == (ROOT / "schemas" / "ivmctl-v1.schema.json").read_text()


def test_init_ignores_the_state_directory(ivmctl, tmp_path: Path) -> None:
    ivmctl("init", str(tmp_path / "new"))
    assert ".ivmctl/" in (tmp_path / "new" / ".gitignore").read_text().splitlines()


def test_init_without_argument_uses_the_config_dir_option(ivmctl, tmp_path: Path) -> None:
    ivmctl("-C", str(tmp_path / "c"), "init")
    assert (tmp_path / "c" / "ivmctl.yaml").is_file()


def test_init_refuses_to_overwrite_and_changes_nothing(ivmctl, tmp_path: Path) -> None:
    target = tmp_path / "existing"
    target.mkdir()
    (target / ".gitignore").write_text("mine\n")
    ran = ivmctl("init", str(target), expect=1)
    assert "already has .gitignore; ivmctl init never overwrites files" in ran.err
    assert "Traceback" not in ran.err
    assert (target / ".gitignore").read_text() == "mine\n"
    assert not (target / "ivmctl.yaml").exists()


def test_init_refuses_a_directory_that_already_holds_configuration(ivmctl, tmp_path: Path) -> None:
    target = tmp_path / "existing"
    target.mkdir()
    (target / "hosts.yaml").write_text("apiVersion: ivmctl/v1\n")
    ran = ivmctl("init", str(target), expect=1)
    assert "already holds configuration (hosts.yaml)" in ran.err
    assert sorted(p.name for p in target.iterdir()) == ["hosts.yaml"]


def test_init_refuses_a_file_as_directory(ivmctl, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    ran = ivmctl("init", str(tmp_path / "afile"), expect=None)
    assert ran.code != 0
    assert "Traceback" not in ran.err
