"""A PostgreSQL server of the test's own, which it may stop and start: :func:`started`.

The machine's PostgreSQL (``INTERLOCK_TEST_POSTGRES_URL``) is shared with
other work and is never restarted by a test. A test that needs PostgreSQL to
fail and come back runs this one instead: ``initdb`` into a fresh temporary
directory, the server on a free loopback port (no Unix socket outside that
directory), ``pg_ctl`` to stop and start it. Trust authentication, as the
machine's test database has, but on 127.0.0.1 only and for the test's lifetime;
``fsync`` is off (nothing here must survive a power loss, and it keeps
``initdb`` and checkpoints quick on a shared disk).

Run as root, the server runs as the ``postgres`` user (PostgreSQL refuses
root) through ``runuser``; the directory is made for it. The binaries are the
newest under ``/usr/lib/postgresql/*/bin`` (Debian's layout), or those of the
directory ``INTERLOCK_POSTGRES_BIN`` names.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from interlock.testing.brokers import free_port

__all__ = ["BIN_ENV", "PostgresNode", "started", "unavailable"]

#: Names the directory holding initdb, pg_ctl and postgres.
BIN_ENV: Final = "INTERLOCK_POSTGRES_BIN"
_RUN_AS: Final = "postgres"
_TIMEOUT: Final = 60


def _bin_dir() -> Path | None:
    named = os.environ.get(BIN_ENV)
    if named:
        return Path(named) if (Path(named) / "initdb").is_file() else None
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _run_as() -> list[str]:
    """The command prefix that drops root to the postgres user; nothing when not root."""
    return ["runuser", "-u", _RUN_AS, "--"] if os.geteuid() == 0 else []


def unavailable() -> str | None:
    """Why no server can be started here (a sentence), or ``None`` when one can."""
    if _bin_dir() is None:
        return (
            f"PostgreSQL's initdb is not installed (apt-get install postgresql), or set {BIN_ENV}"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(_RUN_AS)
        except KeyError:
            return f"running as root, and there is no {_RUN_AS!r} user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root, and runuser (util-linux) is not installed"
    return None


@dataclass
class PostgresNode:
    """A running test-owned server: its URL; :meth:`stop` and :meth:`start` it at will."""

    directory: Path
    port: int
    bin_dir: Path

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of its ``postgres`` database (user ``postgres``, trust)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def running(self) -> bool:
        """Whether the server answers ``pg_ctl status``."""
        return self._pg_ctl("status", check=False).returncode == 0

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} "
            f"-c unix_socket_directories={self.directory} -c fsync=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._pg_ctl("start", "-w", "-t", str(_TIMEOUT), "-o", options, "-l", str(self.log))

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends every session at once (their transactions roll back)."""
        self._pg_ctl("stop", "-w", "-t", str(_TIMEOUT), "-m", mode)

    @property
    def log(self) -> Path:
        """The server's log file."""
        return self.directory / "server.log"

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(  # noqa: S603  (fixed arguments, no shell)
            [*_run_as(), str(self.bin_dir / "pg_ctl"), "-D", str(self.directory / "data"), *args],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT + 10,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"pg_ctl {args[0]} failed: {(done.stdout + done.stderr)[-500:]}")
        return done


@contextmanager
def started() -> Iterator[PostgresNode]:
    """A fresh server in a temporary directory; stopped (immediately) and removed on exit.

    The directory is made by this function, not the caller: pytest's temporary
    directories are private to the user running the tests, whom the server
    (as ``postgres``) cannot enter.
    """
    bin_dir = _bin_dir()
    if bin_dir is None:
        raise RuntimeError(unavailable() or "PostgreSQL is not installed")
    directory = Path(tempfile.mkdtemp(prefix="interlock-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam(_RUN_AS)
        os.chown(directory, owner.pw_uid, owner.pw_gid)
    try:
        subprocess.run(  # noqa: S603  (fixed arguments, no shell)
            [
                *_run_as(),
                str(bin_dir / "initdb"),
                *("-D", str(directory / "data")),
                *("-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"),
            ],
            capture_output=True,
            timeout=_TIMEOUT,
            check=True,
        )
        node = PostgresNode(directory, free_port(), bin_dir)
        node.start()
        try:
            yield node
        finally:
            if node.running:
                node.stop("immediate")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
