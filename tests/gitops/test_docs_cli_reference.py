"""docs/cli.md is generated from the commands; every command's --help shows an example."""

from __future__ import annotations

import click
import pytest

from ivmctl.cli import ExitStatus
from ivmctl.cli.reference import DOC, EXIT_MEANINGS, command_tree, help_text, render

TREE = command_tree()


def test_docs_cli_md_is_up_to_date() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/cli.md is out of date: run `python -m ivmctl.cli.reference --write`"
    )


def test_every_exit_status_is_documented_once_in_the_reference() -> None:
    assert set(EXIT_MEANINGS) == set(ExitStatus)
    text = render()
    for status in ExitStatus:
        assert text.count(f"| {status.value} | `{status.name}` |") == 1


def test_the_reference_covers_every_command_and_subcommand() -> None:
    text = render()
    paths = [path for path, _ in TREE]
    assert {"ivmctl plan", "ivmctl drift", "ivmctl emulator exec", "ivmctl reconcile"} <= set(paths)
    for path in paths:
        assert f"\n## {path}\n" in text


@pytest.mark.parametrize(
    "path,command", [t for t in TREE if t[1] is not None], ids=[p for p, c in TREE if c is not None]
)
def test_every_command_help_has_an_example(path: str, command: click.Command) -> None:
    help_ = help_text(path, command)
    assert "Example" in help_, f"`{path} --help` shows no example"
    examples = help_.split("Example", 1)[1]
    assert "ivmctl" in examples, f"`{path} --help`: the example does not show a command line"


def test_the_readme_exit_table_lists_the_codes_ivmctl_uses() -> None:
    readme = (DOC.parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Exit status", 1)[1].split("\n## ", 1)[0]
    codes = {int(line.split("|")[1]) for line in table.splitlines() if line.startswith("| ")
             and line.split("|")[1].strip().isdigit()}  # fmt: skip
    assert codes == {s.value for s in ExitStatus}


def test_the_readme_quick_start_is_the_two_make_commands() -> None:
    readme = (DOC.parents[1] / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = quick.split("```sh\n", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in block.splitlines()] == [["make", "demo"], ["make", "test"]]
