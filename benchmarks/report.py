"""Render a results file of `python -m benchmarks` as Markdown, for docs/performance.md.

python -m benchmarks.report [benchmarks/out/results.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.common import ROOT, Table

SUPPORTED = 1


def render(document: dict[str, object]) -> str:
    version = document.get("format_version")
    if version != SUPPORTED:
        raise SystemExit(f"results format {version} is not supported (this reader: {SUPPORTED})")
    parts = [f"Measured {document['started']} on {document['machine']}."]
    for data in document["tables"]:  # type: ignore[attr-defined]
        table = Table.from_json(data)
        parts += [f"### {table.title}", "", table.markdown(), ""]
        parts += [f"* {note}" for note in table.notes]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report",
        description="Render a results file of `python -m benchmarks` as Markdown.",
    )
    parser.add_argument(
        "results", nargs="?", type=Path, default=ROOT / "benchmarks/out/results.json",
        help="the results file (default: benchmarks/out/results.json)",
    )  # fmt: skip
    path = parser.parse_args(argv).results
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(
            f"cannot read {path}: {exc}. Run `make bench` to write it, or name another file."
        ) from None
    print(render(document))


if __name__ == "__main__":
    main()
