"""A NATS server with JetStream for tests, demos and benchmarks: TLS only, mutual TLS, a password.

:func:`started` runs this machine's ``nats-server`` with a configuration file
written under the directory it is given:

* one client listener on a free loopback port, **TLS only**: the server
  presents a certificate for ``127.0.0.1`` and ``localhost`` issued by a CA
  made at run time, and requires a client certificate from that CA
  (``verify: true``, mutual TLS); no plain port, no monitoring port, no
  cluster, leaf node or websocket listener;
* JetStream with its store in a temporary directory (removed on exit);
* one user, ``interlock``, with a password generated for this run (in the
  configuration file, mode 0600; never logged); or, with
  ``authorization=False``, no user at all: the client certificate alone
  admits (a manifest broker with ``client_cert: pki:auto`` and no
  ``credentials``).

The server stops (SIGTERM, then SIGKILL) and its store is removed when the
block ends. Several can run at once (pytest-xdist): each has its own port,
server name and directory.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Final

from interlock.crypto.keyfile import write_private_file
from interlock.crypto.pkix import (
    certificate_pem,
    issue_client_certificate,
    issue_server_certificate,
    private_key_pem,
    self_signed_ca,
)
from interlock.testing.brokers import TlsBroker, free_port

__all__ = ["SERVER_ENV", "USER", "started", "unavailable"]

#: Names another nats-server binary (default: ``nats-server`` on PATH, then /usr/sbin).
SERVER_ENV: Final = "INTERLOCK_NATS_SERVER"
#: The one user of a started server.
USER: Final = "interlock"

_READY_LINE: Final = "Server is ready"
_START_TIMEOUT: Final = 30.0
_LIFETIME: Final = timedelta(days=1)


def _binary() -> str | None:
    named = os.environ.get(SERVER_ENV)
    if named:
        return named if os.access(named, os.X_OK) else None
    found = shutil.which("nats-server")
    if found:
        return found
    return "/usr/sbin/nats-server" if os.access("/usr/sbin/nats-server", os.X_OK) else None


def unavailable() -> str | None:
    """Why no server can be started here (a sentence), or ``None`` when one can."""
    if _binary() is None:
        return (
            "nats-server is not installed (Debian: apt-get install nats-server), "
            f"or set {SERVER_ENV}"
        )
    return None


def _write_pki(directory: Path) -> tuple[Path, Path, Path, Path, Path]:
    """CA, server certificate and key, client certificate and key, under ``directory``."""
    ca, ca_key = self_signed_ca("Interlock NATS test CA", _LIFETIME)
    server, server_key = issue_server_certificate(ca, ca_key, ["127.0.0.1", "localhost"], _LIFETIME)
    client, client_key = issue_client_certificate(
        ca, ca_key, "urn:interlock:test:nats-client", _LIFETIME
    )
    files = (
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server.key",
        directory / "client.pem",
        directory / "client.key",
    )
    files[0].write_bytes(certificate_pem(ca))
    files[1].write_bytes(certificate_pem(server))
    write_private_file(files[2], private_key_pem(server_key))
    files[3].write_bytes(certificate_pem(client))
    write_private_file(files[4], private_key_pem(client_key))
    return files


def _config(
    *, name: str, ca: Path, cert: Path, key: Path, store: Path, password: str | None, log: Path
) -> str:
    # Paths are the caller's temporary directory and the password is
    # token_urlsafe: nothing here needs escaping inside double quotes.
    users = (
        f'authorization {{\n  user: "{USER}"\n  password: "{password}"\n}}\n'
        if password is not None
        else ""
    )
    return (
        f'server_name: "{name}"\n'
        f'log_file: "{log}"\n'
        "tls {\n"
        f'  cert_file: "{cert}"\n'
        f'  key_file: "{key}"\n'
        f'  ca_file: "{ca}"\n'
        "  verify: true\n"
        "  timeout: 5\n"
        "}\n"
        "jetstream {\n"
        f'  store_dir: "{store}"\n'
        "  max_memory_store: 64MB\n"
        "  max_file_store: 1GB\n"
        "}\n"
        f"{users}"
    )


def _wait_ready(process: subprocess.Popen[bytes], log: Path, port: int) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nats-server exited with {process.returncode}: {_tail(log)}")
        if log.exists() and _READY_LINE in log.read_text(errors="replace"):
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        time.sleep(0.05)
    raise RuntimeError(f"nats-server did not become ready in {_START_TIMEOUT:.0f} s: {_tail(log)}")


def _tail(log: Path) -> str:
    if not log.exists():
        return "no log"
    return " | ".join(log.read_text(errors="replace").splitlines()[-5:])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def started(
    directory: Path, *, client_ca: bytes | None = None, authorization: bool = True
) -> Iterator[TlsBroker]:
    """A NATS server with JetStream running under ``directory``; stopped and cleaned on exit.

    ``client_ca`` (PEM) is another CA whose client certificates the server
    accepts besides its own: a deployment's PKI, for services that present
    the certificates it issues (``client_cert: pki:auto``). Without
    ``authorization`` the server has no user: the client certificate alone
    admits, and the broker's URL names no user and its password is None.
    """
    binary = _binary()
    if binary is None:
        raise RuntimeError(unavailable() or "nats-server is not available")
    directory.mkdir(parents=True, exist_ok=True)
    ca, cert, key, client_cert, client_key = _write_pki(directory)
    trusted = ca
    if client_ca is not None:
        trusted = directory / "client-cas.pem"
        trusted.write_bytes(ca.read_bytes() + client_ca)
    store = directory / "jetstream"
    store.mkdir(mode=0o700)
    log = directory / "nats-server.log"
    password = secrets.token_urlsafe(24) if authorization else None
    config = directory / "nats-server.conf"
    name = f"interlock-test-{os.getpid()}-{secrets.token_hex(4)}"
    write_private_file(
        config,
        _config(
            name=name, ca=trusted, cert=cert, key=key, store=store, password=password, log=log
        ).encode(),
    )
    port = free_port()
    # No shell; the password is in the 0600 file, not on the command line.
    process = subprocess.Popen(  # noqa: S603
        [binary, "-c", str(config), "-a", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_ready(process, log, port)
        yield TlsBroker(
            kind="nats",
            url=f"tls://{USER}@127.0.0.1:{port}" if authorization else f"tls://127.0.0.1:{port}",
            password=password,
            ca_file=ca,
            client_cert=client_cert,
            client_key=client_key,
        )
    finally:
        _stop(process)
        shutil.rmtree(store, ignore_errors=True)
