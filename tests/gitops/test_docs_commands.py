"""Every command shown in the docs runs, in order, and exits as the docs say.

Each Markdown file (README.md, docs/*.md) is one scenario, run in a scratch copy of
examples/quickstart. Lines of ```sh / ```bash / ```console blocks that start with
`ivmctl ` or `$ ivmctl ` run (through the in-process shell of conftest.py), and so do
`cd DIR` lines; other lines (make, pip) are for people. A trailing `# exit N` says the
expected exit status (default 0). Hidden markers set a scenario up:

    <!-- docs-test: start=empty -->                 start in an empty directory
    <!-- docs-test: replace FILE "OLD" "NEW" -->     an edit the text asks the reader to make
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
QUICKSTART = ROOT / "examples" / "quickstart"
SHELL_FENCES = {"sh", "bash", "console", "shell"}
MARKER = re.compile(r"<!--\s*docs-test:\s*(.*?)\s*-->")
EXIT = re.compile(r"#\s*exit\s+(\d+)\s*$")


@dataclass(frozen=True, kw_only=True)
class Step:
    line: int  # 1-based line in the document
    kind: str  # run | replace | start
    text: str
    expect: int = 0


def steps_of(path: Path) -> list[Step]:
    steps: list[Step] = []
    fence: str | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip() or "text"
            continue
        if fence is None:
            marker = MARKER.search(raw)
            if marker:
                kind, _, rest = marker.group(1).partition(" ")
                kind = "start" if kind.startswith("start=") else kind
                steps.append(
                    Step(line=number, kind=kind, text=marker.group(1) if kind == "start" else rest)
                )
            continue
        if fence not in SHELL_FENCES:
            continue
        command = stripped.removeprefix("$ ")
        if command.startswith("ivmctl ") or command.startswith("cd "):
            found = EXIT.search(command)
            steps.append(
                Step(
                    line=number,
                    kind="run",
                    text=command,
                    expect=int(found.group(1)) if found else 0,
                )
            )
    return steps


SCENARIOS = {p.relative_to(ROOT).as_posix(): steps_of(p) for p in DOCS}


def test_the_docs_show_commands_to_run() -> None:
    counts = {name: sum(s.kind == "run" for s in steps) for name, steps in SCENARIOS.items()}
    assert counts["docs/getting-started.md"] >= 10
    assert counts["docs/concepts.md"] >= 5


def test_every_doc_is_linked_from_the_index() -> None:
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    for doc in sorted((ROOT / "docs").glob("*.md")):
        if doc.name != "index.md":
            assert f"({doc.name})" in index, f"docs/index.md does not link {doc.name}"


@pytest.mark.parametrize("name", [n for n, s in SCENARIOS.items() if s])
def test_every_documented_command_runs(name: str, tmp_path: Path, mini_shell) -> None:
    steps = SCENARIOS[name]
    start = next((s.text for s in steps if s.kind == "start"), "start=quickstart")
    workdir = tmp_path / "work"
    if start == "start=empty":
        workdir.mkdir()
    else:
        shutil.copytree(QUICKSTART, workdir, ignore=shutil.ignore_patterns(".ivmctl"))
    sh = mini_shell(workdir)
    for step in steps:
        where = f"{name}:{step.line}"
        if step.kind == "replace":
            file, old, new = (w.replace("\\n", "\n") for w in shlex.split(step.text))
            target = sh.cwd / file
            text = target.read_text(encoding="utf-8")
            assert old in text, f"{where}: {file} has no {old!r} to replace"
            target.write_text(text.replace(old, new, 1), encoding="utf-8")
        elif step.kind == "run":
            code = sh.line(step.text)
            assert code == step.expect, (
                f"{where}: `{step.text}` exited {code}, the doc says {step.expect}\n"
                f"--- stdout\n{sh.last.out}\n--- stderr\n{sh.last.err}"
            )
        elif step.kind != "start":
            raise AssertionError(f"{where}: unknown docs-test marker {step.kind!r}")
