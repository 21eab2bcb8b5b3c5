"""A working directory where documented commands run as a reader would run them.

:class:`Session` holds a fresh directory with the example manifest copied to
``interlock.yaml`` (its systems and brokers pointed at this machine's stand-ins,
see ``SITE`` in test_commands.py), a data directory of its own
(``INTERLOCK_DATA_DIR``), the sample ERP once the deployment exists, and at most
one ``interlock serve`` in the background. Each ``interlock`` command runs in
its own process: forked from :mod:`tests.docs.forkserver` (the CLI imported
once), or with ``INTERLOCK_DOCS_EXEC=1`` the venv's ``interlock`` script itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from tests.docs.blocks import Command
from tests.docs.shell import Step, expand, parse

__all__ = ["Forks", "Outcome", "Session", "forks", "free_port", "session"]

VENV_BIN: Final = Path(sys.executable).parent
_TIMEOUT: Final = 60.0
_SERVE_READY: Final = 30.0
_EXEC: Final = os.environ.get("INTERLOCK_DOCS_EXEC") == "1"


@dataclass(frozen=True)
class Outcome:
    """What one step did."""

    argv: tuple[str, ...]
    status: int
    stdout: str
    stderr: str
    allowed: frozenset[int] = frozenset({0})  # the statuses the documented line permits here

    @property
    def ok(self) -> bool:
        """Whether it exited as documented."""
        return self.status in self.allowed


class Forks:
    """The fork server: one process that imported the CLI, forking one child per command."""

    def __init__(self, log: Path) -> None:
        self._stderr = log.open("wb")
        self._process = subprocess.Popen(  # noqa: S603  (fixed argv, no shell)
            [sys.executable, str(Path(__file__).with_name("forkserver.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")},
        )
        self._ask(None)  # {"ready": true}

    def _ask(self, request: dict[str, Any] | None) -> dict[str, Any]:
        stdin, stdout = self._process.stdin, self._process.stdout
        if stdin is None or stdout is None:
            raise RuntimeError("the fork server has no pipes")
        if request is not None:
            stdin.write(json.dumps(request) + "\n")
            stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError("the fork server exited (see its log)")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(self, request: dict[str, Any]) -> int:
        return int(self._ask(request)["status"])

    def start(self, request: dict[str, Any]) -> int:
        return int(self._ask({**request, "background": True})["pid"])

    def poll(self, pid: int) -> int | None:
        status = self._ask({"poll": pid})["status"]
        return None if status is None else int(status)

    def stop(self, pid: int) -> int:
        return int(self._ask({"stop": pid, "timeout": 15})["status"])

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=30)
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._stderr.close()


@dataclass
class _Background:
    """A command left running (``interlock serve``): a forked pid or a process."""

    label: str
    stdout: Path
    stderr: Path
    pid: int | None = None
    process: subprocess.Popen[bytes] | None = None


def free_port() -> int:
    """A port nothing listens on now (the OS's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Session:
    """One document's run: its directory, environment, variables and running gateway."""

    work: Path
    env: dict[str, str]
    variables: dict[str, str]
    gateway: str  # HOST:PORT the documented gateway address is replaced by
    forks: Forks | None
    outcomes: list[Outcome] = field(default_factory=list)
    before: list[Callable[[Session, Step], None]] = field(default_factory=list)
    after: list[Callable[[Session, Step, Outcome], None]] = field(default_factory=list)
    _background: _Background | None = None
    _count: int = 0

    @property
    def data_dir(self) -> Path:
        """The deployment's data directory (``INTERLOCK_DATA_DIR``)."""
        return Path(self.env["INTERLOCK_DATA_DIR"])

    def interlock(self, *argv: str, stdout: Path | None = None) -> Outcome:
        """Run ``interlock ARGV`` here (for the test's own look-ups, not a documented line)."""
        return self._run(Step(["interlock", *argv]), stdout)

    def run(self, command: Command, text: str) -> list[Outcome]:
        """Run ``text`` (``command`` with its placeholders filled); every step's outcome."""
        outcomes: list[Outcome] = []
        steps = parse(expand(text, {"HOME": self.env["HOME"], **self.variables}))
        for number, step in enumerate(steps, 1):
            if step.export:
                self.env.update(step.assignments)
                continue
            for hook in self.before:
                hook(self, step)
            if step.argv[:2] == ["interlock", "serve"]:
                outcome = self._serve(step)
            else:
                target = self.work / step.stdout_file if step.stdout_file else None
                outcome = self._run(step, target)
            for after in self.after:
                after(self, step, outcome)
            if number == len(steps):
                outcome = dataclasses.replace(outcome, allowed=command.allowed_statuses())
            outcomes.append(outcome)
            self.outcomes.append(outcome)
            if not outcome.ok:  # the rest would not run (or not as meant)
                break
        return outcomes

    def _files(self) -> tuple[Path, Path]:
        self._count += 1
        logs = self.work.parent / "logs"
        logs.mkdir(exist_ok=True)
        return logs / f"{self._count:03d}.out", logs / f"{self._count:03d}.err"

    def _stdin(self, step: Step) -> str | None:
        if step.stdin_file is not None:
            return str(self.work / step.stdin_file)
        if step.stdin_text is not None:
            path = self.work.parent / "logs" / f"{self._count:03d}.in"
            path.parent.mkdir(exist_ok=True)
            path.write_text(step.stdin_text, encoding="utf-8")
            return str(path)
        return None

    def _run(self, step: Step, stdout: Path | None) -> Outcome:
        out, err = self._files()
        stdin = self._stdin(step)
        env = {**self.env, **step.assignments}
        target = stdout or out
        if step.argv[0] == "interlock" and self.forks is not None and not _EXEC:
            status = self.forks.run(
                {
                    "run": step.argv[1:],
                    "cwd": str(self.work),
                    "env": env,
                    "stdin": stdin,
                    "stdout": str(target),
                    "stderr": str(err),
                    "timeout": _TIMEOUT,
                }
            )
        else:
            status = self._exec(step.argv, env, stdin, target, err)
        text = target.read_text(encoding="utf-8", errors="replace") if target.exists() else ""
        return Outcome(tuple(step.argv), status, text, err.read_text(errors="replace"))

    def _exec(
        self, argv: list[str], env: dict[str, str], stdin: str | None, out: Path, err: Path
    ) -> int:
        program = shutil.which(argv[0], path=env["PATH"])
        if program is None:
            return 127
        with (
            _opened(stdin, "rb") as given,
            out.open("wb") as written,
            err.open("wb") as errors,
        ):
            try:
                return subprocess.run(  # noqa: S603  (argv from the docs, no shell)
                    [program, *argv[1:]],
                    cwd=self.work,
                    env=env,
                    stdin=given if given is not None else subprocess.DEVNULL,
                    stdout=written,
                    stderr=errors,
                    timeout=_TIMEOUT,
                    check=False,
                ).returncode
            except subprocess.TimeoutExpired:
                return -9

    def _serve(self, step: Step) -> Outcome:
        """Start the gateway in the background (stopping one already running); wait for it."""
        self.stop_background()
        argv = list(step.argv)
        if "--listen" not in argv:
            argv += ["--listen", self.gateway]  # see SITE: the gateway's port is the test's
        out, err = self._files()
        env = {**self.env, **step.assignments}
        running = _Background(" ".join(argv), out, err)
        if self.forks is not None and not _EXEC:
            running.pid = self.forks.start(
                {
                    "run": argv[1:],
                    "cwd": str(self.work),
                    "env": env,
                    "stdin": None,
                    "stdout": str(out),
                    "stderr": str(err),
                }
            )
        else:
            with out.open("wb") as written, err.open("wb") as errors:
                running.process = subprocess.Popen(  # noqa: S603
                    [str(VENV_BIN / "interlock"), *argv[1:]],
                    cwd=self.work,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=written,
                    stderr=errors,
                    start_new_session=True,
                )
        self._background = running
        status = self._wait_listening(running)
        return Outcome(tuple(argv), status, out.read_text(), err.read_text(errors="replace"))

    def _wait_listening(self, running: _Background) -> int:
        host, port = self.gateway.rsplit(":", 1)
        deadline = time.monotonic() + _SERVE_READY
        while time.monotonic() < deadline:
            if self._exited(running) is not None:
                self._background = None
                return self._exited(running) or 1
            try:
                with socket.create_connection((host, int(port)), timeout=0.5):
                    return 0
            except OSError:
                time.sleep(0.1)
        return -1

    def _exited(self, running: _Background) -> int | None:
        if running.process is not None:
            return running.process.poll()
        if running.pid is not None and self.forks is not None:
            return self.forks.poll(running.pid)
        return None

    def stop_background(self) -> None:
        """Stop the gateway started by a documented ``serve``, if one runs."""
        running, self._background = self._background, None
        if running is None:
            return
        if running.pid is not None and self.forks is not None:
            self.forks.stop(running.pid)
        elif running.process is not None:
            running.process.terminate()
            try:
                running.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait()


@contextmanager
def _opened(path: str | None, mode: str) -> Iterator[IO[bytes] | None]:
    if path is None:
        yield None
        return
    with open(path, mode) as handle:  # noqa: PTH123
        yield handle


@contextmanager
def forks(tmp: Path) -> Iterator[Forks | None]:
    """The fork server (None with INTERLOCK_DOCS_EXEC=1), shared by the sessions of a run."""
    if _EXEC:
        yield None
        return
    server = Forks(tmp / "forkserver.log")
    try:
        yield server
    finally:
        server.close()


@contextmanager
def session(
    tmp: Path, manifest_text: str, inputs: dict[str, bytes], server: Forks | None
) -> Iterator[Session]:
    """A fresh session in ``tmp``: ``interlock.yaml``, the input files, no deployment yet."""
    work = tmp / "work"
    work.mkdir()
    (work / "interlock.yaml").write_text(manifest_text, encoding="utf-8")
    for name, content in inputs.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(content)
    home = tmp / "home"
    home.mkdir()
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "SHELL": "/bin/bash",  # the reader's login shell (`interlock --install-completion`)
        "USER": os.environ.get("USER", "ops"),
        "LOGNAME": os.environ.get("LOGNAME", os.environ.get("USER", "ops")),
        "INTERLOCK_DATA_DIR": str(work / ".interlock"),
        # Not the documented 9464: tests run in parallel, on a machine others use too.
        "INTERLOCK_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
    }
    token = secrets.token_urlsafe(32)
    running = Session(
        work, env, {"ERP_TOKEN": token, "TOKEN": token}, f"127.0.0.1:{free_port()}", server
    )
    try:
        yield running
    finally:
        running.stop_background()
