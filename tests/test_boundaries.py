"""The module boundaries of ../shared/STYLE.md, checked by reading every import with ast.

A failure names the importing file, the line and the rule it breaks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ivmctl"

# Layer of a module (dotted name under ivmctl) -> layers it must never import.
BASE = {
    "ivmctl.errors",
    "ivmctl.rules",
    "ivmctl.resources",
    "ivmctl.model",
    "ivmctl.collector",
    "ivmctl.lazy",
    "ivmctl.cachefiles",
    "ivmctl.jsontext",
    "ivmctl.values",
}
FORBIDDEN: dict[str, set[str]] = {
    "base": {"spec", "plan", "providers", "runtime", "cli", "render", "core", "state"},
    "spec": {"plan", "providers", "runtime", "cli", "render", "core"},
    "plan": {"spec", "providers", "runtime", "cli", "render", "core", "state"},
    "runtime": {"spec", "plan", "providers", "cli", "render", "core", "model", "state"},
    "providers": {"spec", "cli", "render", "core"},
    "state": {"spec", "plan", "providers", "runtime", "cli", "render", "core"},
    "core": {"cli", "render"},
    "render": {"providers", "runtime", "spec"},
    "cli": set(),
}
# Third-party library -> the only layer (or module) allowed to import it.
LIBRARY_HOME = {
    "click": {"cli"},
    "rich": {"render"},
    "pluggy": {"providers"},
    "deepdiff": {"ivmctl.plan.diff"},
    "ruamel": {"spec"},
    "jinja2": {"spec"},
    "jsonschema": {"spec"},
    "jsonschema_rs": {"spec"},
    "yaml": {"spec"},
}
# The pure planner reads no clock and does no I/O.
PLAN_FORBIDDEN_STDLIB = {
    "os", "pathlib", "io", "subprocess", "sqlite3", "time", "datetime", "socket", "shutil",
    "tempfile", "random", "threading",
}  # fmt: skip


def layer_of(module: str) -> str:
    if module in BASE:
        return "base"
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__main__", "entry"):  # the executable's own
        return "cli"
    return parts[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, package: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
    return found


def python_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "schemas" not in p.parts)


def test_the_package_has_modules_to_check() -> None:
    assert len(python_files()) >= 5


def boundary_problems(path: Path, module: str) -> list[str]:
    """Every import in `path` (module `module`) that breaks the table above."""
    layer = layer_of(module)
    problems: list[str] = []
    for line, target in imports_of(path, module):
        top = target.split(".")[0]
        where = f"{module}:{line}"
        if top == "ivmctl":
            target_layer = layer_of(target) if target != "ivmctl" else "base"
            if target_layer in FORBIDDEN[layer]:
                problems.append(f"{where}: {layer} must not import {target} ({target_layer})")
            if layer == "base" and target not in BASE and target != "ivmctl":
                problems.append(f"{where}: {module} may only import other base modules")
        elif top in LIBRARY_HOME:
            homes = LIBRARY_HOME[top]
            if layer not in homes and not any(module.startswith(h) for h in homes):
                problems.append(f"{where}: {top} belongs to {sorted(homes)} only")
        if layer == "plan" and top in PLAN_FORBIDDEN_STDLIB:
            problems.append(f"{where}: the planner is pure; it must not import {top}")
    return problems


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_respects_layer_boundaries(path: Path) -> None:
    problems = boundary_problems(path, module_name(path))
    assert not problems, "\n".join(problems)


def test_boundary_checker_catches_forbidden_imports(tmp_path: Path) -> None:
    sample = tmp_path / "probe.py"
    sample.write_text(
        "import os\nfrom ivmctl.runtime import world\nimport rich\nfrom . import diff\n",
        encoding="utf-8",
    )
    problems = "\n".join(boundary_problems(sample, "ivmctl.plan.probe"))
    assert "ivmctl.plan.probe:1: the planner is pure; it must not import os" in problems
    assert "ivmctl.plan.probe:2: plan must not import ivmctl.runtime (runtime)" in problems
    assert "ivmctl.plan.probe:3: rich belongs to ['render'] only" in problems
    assert "diff" not in problems  # a relative import inside plan/ is fine
