"""`ivmctl reconcile` as a process: SIGTERM and Ctrl-C end it cleanly after the current cycle."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_loop_cleanly_after_the_cycle(tmp_path: Path, signum: int) -> None:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "examples" / "quickstart", config,
                    ignore=shutil.ignore_patterns(".ivmctl"))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVMCTL_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ivmctl", "reconcile", "--interval", "30", "--json"],
        cwd=config, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())  # the first cycle is logged
        assert first["cycle"] == 1 and first["error"] == ""
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=20)  # well before the 30 s interval
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == ""  # no further cycle started
    assert f"{signal.Signals(signum).name}: stopping after the current cycle" in err
    assert "Traceback" not in err
    assert not (config / ".ivmctl" / "state.lock").exists()
