"""examples/gitops: the pipeline's ivmctl steps and the pre-commit hooks, run locally in order."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ivmctl.spec.schema import load_schema

ROOT = Path(__file__).resolve().parents[2]
REPO = ROOT / "examples" / "gitops" / "repo"
WORKFLOW = REPO / ".github" / "workflows" / "ivmctl.yml"
PRE_COMMIT = REPO / ".pre-commit-config.yaml"
BIN = Path(sys.executable).parent


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    target = tmp_path / "repo"
    shutil.copytree(REPO, target, ignore=shutil.ignore_patterns(".ivmctl"))
    return target


def shell(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a step's script as GitHub Actions does (bash -e), with this ivmctl on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVMCTL_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["GITHUB_STEP_SUMMARY"] = str(cwd / "step-summary.md")
    env["COLUMNS"] = "200"
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def ivmctl_steps(job: str) -> list[str]:
    """The `run:` scripts of a job that call ivmctl (installing it is the runner's business)."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = workflow["jobs"][job]["steps"]
    return [s["run"] for s in steps if "run" in s and re.search(r"^\s*ivmctl ", s["run"], re.M)]


def run_job(sh: Any, job: str, *, expect: int = 0) -> str:
    """Every ivmctl step of a job, in this process; returns the last command's stdout."""
    for script in ivmctl_steps(job):
        code = sh.script(script)
        assert code == expect, f"job {job}: step exited {code}\n{script}\n" + "\n".join(sh.log)
    return str(sh.last.out)


def test_the_workflow_has_the_three_triggers_and_their_jobs() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads `on` as true
    assert {"pull_request", "push", "schedule"} <= set(triggers)
    jobs = workflow["jobs"]
    assert jobs["plan"]["if"] == "github.event_name == 'pull_request'"
    assert jobs["apply"]["needs"] == "plan-for-apply"
    uploaded = jobs["plan"]["steps"][-1]
    assert uploaded["uses"].startswith("actions/upload-artifact")
    assert "ivmctl.plan" in uploaded["with"]["path"] and "plan.json" in uploaded["with"]["path"]


def test_pull_request_merge_apply_and_drift_steps_run_in_order(repo: Path, mini_shell) -> None:
    sh = mini_shell(repo)
    run_job(sh, "plan")
    summary = json.loads((repo / "plan.json").read_text())["summary"]
    assert summary == {"add": 7, "change": 0, "destroy": 0, "migrate": 0, "restart": 0}
    assert "Plan: 7 to add" in (repo / "step-summary.md").read_text()

    run_job(sh, "plan-for-apply")
    applied = run_job(sh, "apply")
    events = [json.loads(line) for line in applied.splitlines() if line.startswith("{")]
    assert events, applied
    sh.line("ivmctl -C fleet plan")
    assert "No changes." in sh.last.out

    run_job(sh, "drift")
    assert json.loads((repo / "drift.json").read_text())["drift"] is False

    # someone changes a guest by hand: the scheduled job fails and keeps the report
    sh.line("ivmctl -C fleet emulator exec vmhost02 -- hpvmmodify -P db01 -e 60")
    run_job(sh, "drift", expect=2)
    report = json.loads((repo / "drift.json").read_text())
    assert [(i["address"], i["kind"]) for i in report["items"]] == [("guest.db01", "drift")]
    assert "Drift: the runtime changed outside ivmctl" in (repo / "step-summary.md").read_text()

    # the drift step's shell, run by bash itself: exit 2 reaches the job
    proc = shell(ivmctl_steps("drift")[0], repo)
    assert proc.returncode == 2, proc.stderr


def test_a_stale_saved_plan_is_refused_on_merge(repo: Path, mini_shell) -> None:
    sh = mini_shell(repo)
    run_job(sh, "plan-for-apply")
    assert sh.line("ivmctl -C fleet apply --auto-approve") == 0  # someone applied meanwhile
    assert sh.script(ivmctl_steps("apply")[0]) == 1
    assert "stale" in sh.last.err


# --- pre-commit ---------------------------------------------------------------------------------
def hooks() -> dict[str, dict[str, Any]]:
    config = yaml.safe_load(PRE_COMMIT.read_text())
    return {h["id"]: h for r in config["repos"] for h in r["hooks"]}


def check_jsonschema(repo: Path) -> list[str]:
    """What the check-jsonschema hook checks, done with the jsonschema library."""
    hook = hooks()["check-jsonschema"]
    schema_file = repo / hook["args"][hook["args"].index("--schemafile") + 1]
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    files = [
        p
        for p in sorted(repo.rglob("*"))
        if re.match(hook["files"], p.relative_to(repo).as_posix())
    ]
    assert files, "the hook's pattern matches no file"
    problems = []
    for path in files:
        for error in validator.iter_errors(yaml.safe_load(path.read_text())):
            problems.append(f"{path.name}: {error.message}")
    return problems


def test_pre_commit_hooks_pass_on_the_example(repo: Path, mini_shell) -> None:
    sh = mini_shell(repo)
    for hook_id in ("ivmctl-fmt", "ivmctl-validate"):
        assert sh.line(hooks()[hook_id]["entry"]) == 0, sh.log
    assert check_jsonschema(repo) == []


def test_the_vendored_schema_is_the_shipped_one() -> None:
    hook = hooks()["check-jsonschema"]
    vendored = REPO / hook["args"][hook["args"].index("--schemafile") + 1]
    assert json.loads(vendored.read_text()) == load_schema()


def test_pre_commit_hooks_catch_bad_formatting_and_schema_errors(repo: Path, mini_shell) -> None:
    sh = mini_shell(repo)
    apps = repo / "fleet" / "apps.yaml"
    apps.write_text(apps.read_text().replace("    vcpus: 4\n", "    vcpus:    4\n    cpus: 4\n"))
    assert sh.line(hooks()["ivmctl-fmt"]["entry"]) == 1
    assert sh.line(hooks()["ivmctl-validate"]["entry"]) == 1
    assert any("'cpus'" in p for p in check_jsonschema(repo))
