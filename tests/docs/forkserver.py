"""Run ``interlock`` commands in processes forked from one that has imported the CLI.

Importing every sub-command's modules takes seconds (``interlock.cli.main`` loads
them on demand, so each command would pay for its own); the docs test runs about
a hundred commands. This script, started once per test with the venv's Python,
imports them all and then serves requests, one JSON line each
on stdin, with one JSON line each on stdout:

* ``{"run": [ARGS], "cwd": D, "env": {..}, "stdin": F|null, "stdout": F, "stderr": F,
  "timeout": S}``: fork; the child changes to D, takes exactly ``env``, has F as its
  standard streams and runs ``interlock ARGS`` (``interlock.cli.main.main``, what the
  ``interlock`` script runs); answered ``{"status": N}`` when it exits (a timeout
  kills it: status -9).
* the same with ``"background": true``: answered ``{"pid": P}`` at once.
* ``{"poll": P}``: ``{"status": N}`` once background child P has exited, else
  ``{"status": null}``.
* ``{"stop": P, "timeout": S}``: SIGTERM to background child P, SIGKILL after S
  seconds; answered ``{"status": N}``.

Each command is still its own process, with its own environment, working
directory and exit status; only the interpreter's start-up and imports are shared.
Set ``INTERLOCK_DOCS_EXEC=1`` to run ``.venv/bin/interlock`` itself instead
(tests/docs/runner.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from typing import Any


def _child(request: dict[str, Any]) -> None:
    os.setsid()  # its own process group, like a command started from a shell
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    stdin = request.get("stdin") or os.devnull
    for fd, path, flags in (
        (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        (0, stdin, os.O_RDONLY),
    ):
        try:
            opened = os.open(path, flags, 0o600)
        except OSError as exc:  # `< missing-file`: the shell's message and status
            os.write(2, f"sh: {path}: {exc.strerror}\n".encode())
            os._exit(1)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.argv = ["interlock", *request["run"]]
    from interlock.cli.main import main

    status = 70
    try:
        status = main(request["run"])
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _wait(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -9
        time.sleep(0.01)


def _stop(pid: int, timeout: float) -> int:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    return _wait(pid, timeout)


def serve() -> None:
    """Answer requests until stdin closes; background children are stopped then."""
    import importlib

    from interlock.cli.main import COMMANDS

    for entry in COMMANDS.values():  # the point: imported once, before any fork
        importlib.import_module(entry.module)

    out = sys.stdout
    sys.stdout = sys.stderr  # nothing else may write on the answer channel
    background: set[int] = set()
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        if "poll" in request:
            pid = int(request["poll"])
            done, status = os.waitpid(pid, os.WNOHANG) if pid in background else (pid, 0)
            if done:
                background.discard(pid)
            answer: dict[str, int | None] = {
                "status": os.waitstatus_to_exitcode(status) if done else None
            }
        elif "stop" in request:
            pid = int(request["stop"])
            background.discard(pid)
            answer = {"status": _stop(pid, float(request["timeout"]))}
        else:
            pid = os.fork()
            if pid == 0:
                _child(request)
            if request.get("background"):
                background.add(pid)
                answer = {"pid": pid}
            else:
                answer = {"status": _wait(pid, float(request["timeout"]))}
        out.write(json.dumps(answer) + "\n")
        out.flush()
    for pid in background:
        _stop(pid, 10.0)


if __name__ == "__main__":
    serve()
