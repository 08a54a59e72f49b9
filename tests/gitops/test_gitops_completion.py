"""`ivmctl completion SHELL` prints click's completion script, and it completes our commands."""

from __future__ import annotations

import pytest
from click.shell_completion import ShellComplete

from ivmctl.cli import cli

MARKERS = {
    "bash": "complete -o nosort -F _ivmctl_completion ivmctl",
    "zsh": "compdef _ivmctl_completion ivmctl",
    "fish": "complete --no-files --command ivmctl",
}


@pytest.mark.parametrize("shell", sorted(MARKERS))
def test_completion_prints_the_script_for_each_shell(ivmctl, shell: str) -> None:
    ran = ivmctl("completion", shell)
    assert MARKERS[shell] in ran.out
    assert "_IVMCTL_COMPLETE" in ran.out


def test_completion_refuses_an_unknown_shell(ivmctl) -> None:
    ran = ivmctl("completion", "tcsh", expect=64)
    assert "'tcsh' is not one of" in ran.err


def test_the_script_completes_lazily_registered_commands() -> None:
    completions = ShellComplete(cli, {}, "ivmctl", "_IVMCTL_COMPLETE").get_completions([], "dr")
    assert [c.value for c in completions] == ["drift"]
    options = ShellComplete(cli, {}, "ivmctl", "_IVMCTL_COMPLETE").get_completions(
        ["reconcile"], "--auto"
    )
    assert [c.value for c in options] == ["--auto-approve-safe"]
