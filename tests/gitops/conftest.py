"""Fixtures of the gitops and docs tests: ivmctl run in-process in a scratch config directory."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ivmctl.cli import main

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"


@dataclass(frozen=True, kw_only=True)
class Ran:
    code: int
    out: str
    err: str


Ivmctl = Callable[..., Ran]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No IVMCTL_* variables from the caller's environment; a wide, colourless terminal."""
    for name in list(os.environ):
        if name.startswith("IVMCTL_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def ivmctl(clean_env: None, capsys: pytest.CaptureFixture[str]) -> Ivmctl:
    """Run `ivmctl ARGS...` in this process (as the console script does); returns the result."""

    def run(*args: str, expect: int | None = 0) -> Ran:
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        out, err = capsys.readouterr()
        code = exited.value.code
        ran = Ran(code=code if isinstance(code, int) else (0 if code is None else 1), out=out,
                  err=err)  # fmt: skip
        if expect is not None and ran.code != expect:
            raise AssertionError(
                f"ivmctl {' '.join(args)} exited {ran.code}, expected {expect}\n"
                f"--- stdout\n{out}\n--- stderr\n{err}"
            )
        return ran

    return run


@pytest.fixture
def quickstart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of examples/quickstart, made the current directory."""
    target = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, target, ignore=shutil.ignore_patterns(".ivmctl"))
    monkeypatch.chdir(target)
    return target


# --- a small shell, in-process ----------------------------------------------------------------
# Pipelines and docs run `ivmctl` lines; a subprocess costs ~1 s each, so the lines run
# in this process through ivmctl.cli.main. Supported, and nothing else (anything else
# fails the test, naming the line): `ivmctl ARGS`, `> FILE`, `>> FILE`, `A && B`,
# `A || true`, `A || status=$?`, `cd DIR`, `exit "${status:-0}"`, `$VAR` / `${VAR:-default}`.
_VAR = re.compile(r"\$\{(\w+):-([^}]*)\}|\$\{(\w+)\}|\$(\w+|\?)")


def run_ivmctl(args: list[str]) -> Ran:
    """`ivmctl ARGS` in this process; stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(args)
            code = 0
        except SystemExit as exited:
            value = exited.code
            code = value if isinstance(value, int) else (0 if value is None else 1)
    return Ran(code=code, out=out.getvalue(), err=err.getvalue())


class MiniShell:
    """Runs script lines like `bash -e` would, for the forms listed above."""

    def __init__(
        self, cwd: Path, env: dict[str, str], chdir: Callable[[Path], None] = os.chdir
    ) -> None:
        self.cwd = cwd
        self.chdir = chdir
        self.vars = dict(env)
        self.last: Ran = Ran(code=0, out="", err="")
        self.log: list[str] = []

    def expand(self, word: str) -> str:
        def value(match: re.Match[str]) -> str:
            name, default, braced, plain = match.groups()
            if name:
                return self.vars.get(name) or default
            key = braced or plain
            return str(self.last.code) if key == "?" else self.vars.get(key, "")

        return _VAR.sub(value, word)

    def _simple(self, words: list[str]) -> int:
        if not words:
            return 0
        if words == ["true"]:
            return 0
        if len(words) == 1 and "=" in words[0]:
            name, _, raw = words[0].partition("=")
            self.vars[name] = self.expand(raw)
            return 0
        target, mode = None, ""
        if len(words) >= 3 and words[-2] in (">", ">>"):
            target, mode = words[-1], words[-2]
            words = words[:-2]
        words = [self.expand(w) for w in words]
        if words[0] == "cd" and len(words) == 2:
            self.cwd = (self.cwd / words[1]).resolve()
            self.chdir(self.cwd)
            return 0
        if words[0] == "exit":
            raise _Exit(int(words[1]) if len(words) > 1 else self.last.code)
        if words[0] != "ivmctl":
            raise AssertionError(f"the test shell runs only ivmctl commands, not {words!r}")
        self.last = run_ivmctl(words[1:])
        self.log.append(f"$ {' '.join(words)}  -> {self.last.code}\n{self.last.err}")
        if target is not None:
            path = self.cwd / self.expand(target)
            with path.open("a" if mode == ">>" else "w", encoding="utf-8") as handle:
                handle.write(self.last.out)
        return self.last.code

    def line(self, text: str) -> int:
        """One line: `A && B || C` chains, left to right as the shell does."""
        words = shlex.split(text, comments=True)
        code, op, part = 0, "", []
        for word in [*words, ";"]:
            if word in ("&&", "||", ";"):
                if not op or (op == "&&" and code == 0) or (op == "||" and code != 0):
                    code = self._simple(part)
                op, part = word, []
            else:
                part.append(word)
        return code

    def script(self, text: str) -> int:
        """A script under `-e`: the first failing line that is not in a || chain ends it."""
        try:
            for raw in text.splitlines():
                code = self.line(raw)
                if code != 0 and "||" not in raw:
                    return code
        except _Exit as exited:
            return exited.code
        return 0


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@pytest.fixture
def mini_shell(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], MiniShell]:
    """A MiniShell in a directory (made the current one, as the commands expect)."""

    def make(cwd: Path) -> MiniShell:
        monkeypatch.chdir(cwd)
        return MiniShell(
            cwd, {"GITHUB_STEP_SUMMARY": str(cwd / "step-summary.md")}, chdir=monkeypatch.chdir
        )

    return make
