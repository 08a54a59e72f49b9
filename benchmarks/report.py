"""Render a results file of `python -m benchmarks` as Markdown, for docs/performance.md.

python -m benchmarks.report [benchmarks/out/results.json]
"""

from __future__ import annotations

import json
import sys
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


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "benchmarks/out/results.json"
    print(render(json.loads(path.read_text(encoding="utf-8"))))


if __name__ == "__main__":
    main()
