"""A spare worker process, started with the command so the first reader is ready early.

A worker process (`ivmctl.runtime.workers`) spends about 0.3 s starting: its interpreter,
its imports, and the module of the first task it is sent. Started when ivmctl first
needs it (a refresh's prefetch, once the configuration names the hosts), a reader at
10,000 guests began its first host 0.6 s into a cold plan, while ivmctl's own CPU did
all the work. So a command that may read the runtime starts one worker right away,
before ivmctl's own imports, as a browser keeps a spare renderer process: the spare
imports what a reader needs on the machine's other CPU, then waits, without opening
anything, until a worker pool takes it (`take`) and sends it the world file's path.

Which commands may read the runtime is a guess from the arguments (`start`), made
before click parses them; a wrong guess costs a process that starts and is killed.
A spare nobody took is killed as ivmctl exits (`discard`): it has opened nothing, so
nothing is lost. No spare is started with one CPU (its start-up would take ivmctl's),
nor when `IVMCTL_SPARE_WORKER=0`.

Handshake, on the spare's stdin before the workers' protocol begins: the world path,
length-prefixed (4 bytes, big-endian), then the usual requests. An input that closes
first (ivmctl exited) ends the spare.

This module imports only the standard library and `crashpoints`: it runs before the rest
of ivmctl is imported.
"""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ivmctl.runtime.crashpoints import KILL_AT_ENV, KILL_TRACE_ENV

ENV = "IVMCTL_SPARE_WORKER"
# the commands that refresh the runtime (`ivmctl.cli.COMMANDS`), which start readers
# for a large world; a test checks that each of them is a command
READING_COMMANDS = frozenset({"plan", "apply", "destroy", "drift", "reconcile", "status"})
# what a reader imports for its first task: the bundled provider's (`ReadOnReader`)
TASK_MODULES = ("ivmctl.providers.emulator",)
_PATH_SIZE = struct.Struct(">I")

_spare: subprocess.Popen[bytes] | None = None


def worker_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A worker's environment: ivmctl's, without the kill seam (`crashpoints`), which
    stops the process it names, ivmctl's."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if k not in (KILL_AT_ENV, KILL_TRACE_ENV)}


def start_worker(*args: str) -> subprocess.Popen[bytes]:
    """A worker process (`python -m ivmctl.runtime.workers ARGS`), piped to this one, in
    a process group of its own: a terminal's Ctrl-C goes to its foreground process group,
    not to the workers', even while they start up and before they ignore SIGINT."""
    return subprocess.Popen(
        [sys.executable, "-m", "ivmctl.runtime.workers", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=worker_environment(),
        process_group=0,
    )


def wanted(argv: Sequence[str], *, cpus: int | None = None) -> bool:
    """True when `argv` (the command's arguments) names a command that reads the runtime,
    the machine has a CPU to spare and the environment does not turn the spare off."""
    if os.environ.get(ENV, "1") == "0":
        return False
    if (cpus if cpus is not None else os.cpu_count() or 1) < 2:
        return False
    return any(arg in READING_COMMANDS for arg in argv)


def start(argv: Sequence[str]) -> None:
    """Start the spare if `wanted(argv)` and none runs; a spare that cannot be started is
    no error (the pool starts its workers as before)."""
    global _spare
    if _spare is not None or not wanted(argv):
        return
    try:
        _spare = start_worker("--spare", *TASK_MODULES)
    except OSError:
        _spare = None


def take(path: Path) -> subprocess.Popen[bytes] | None:
    """The spare, now serving the world at `path`; None when there is none, or it could
    not be handed the path (it died: it is reaped, and the caller starts a worker)."""
    global _spare
    process, _spare = _spare, None
    if process is None:
        return None
    assert process.stdin is not None
    encoded = os.fsencode(path)
    try:
        process.stdin.write(_PATH_SIZE.pack(len(encoded)) + encoded)
        process.stdin.flush()
    except OSError:
        _kill(process)
        return None
    return process


def discard() -> None:
    """Kill the spare if nobody took it (as ivmctl exits)."""
    global _spare
    process, _spare = _spare, None
    if process is not None:
        _kill(process)


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):  # its pipe broke: nothing is left to send
                stream.close()


def await_path(modules: Sequence[str]) -> str:
    """In the spare: import `modules`, then wait for the world's path on stdin (read
    byte-exact, as the workers' protocol reads the same descriptor after it); exits
    quietly when the input closes first."""
    import importlib

    for name in modules:
        importlib.import_module(name)
    (size,) = _PATH_SIZE.unpack(_read_exactly(_PATH_SIZE.size))
    return os.fsdecode(_read_exactly(size))


def _read_exactly(size: int) -> bytes:
    got = b""
    while len(got) < size:
        chunk = os.read(0, size - len(got))
        if not chunk:  # ivmctl exited, or did not need us
            os._exit(0)
        got += chunk
    return got
