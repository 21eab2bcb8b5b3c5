"""A RabbitMQ test node of this machine's ``rabbitmq-server``: TLS only, mutual TLS.

:func:`started` makes a CA, a server certificate for 127.0.0.1/localhost and a
client certificate, writes a ``rabbitmq.conf`` with no plain listener and one
TLS listener on a free loopback port that requires a client certificate from
that CA, starts a node with its own name, ports and data directory, waits
until it accepts TLS connections, adds a user with a generated password
(given on standard input, never on a command line) and a password-less user
named by the client certificate's common name (SASL EXTERNAL, plugin
``rabbitmq_auth_mechanism_ssl``), and removes ``guest``.
The node stops and its directory is removed on exit. The machine's own node
(5672) is never touched.

Run as root, ``rabbitmq-server`` drops to the ``rabbitmq`` user, which cannot
enter pytest's 0700 temporary folders: the node's own files live in a folder
made with :func:`tempfile.mkdtemp` and given to that user; the files a client
needs (CA, client certificate and key) are written under ``directory``.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
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

__all__ = ["CERTIFICATE_USER", "USER", "ServerIdentity", "started", "unavailable"]

SERVER: Final = Path("/usr/sbin/rabbitmq-server")
CTL: Final = Path("/usr/sbin/rabbitmqctl")
#: The system user ``rabbitmq-server`` runs as when started by root.
SERVICE_USER: Final = "rabbitmq"
#: The user Interlock connects as with a password (SASL PLAIN).
USER: Final = "interlock"
#: The client certificate's identity; its common name is the user of SASL EXTERNAL
#: (``ssl_cert_login_from = common_name``), which has no password.
CERTIFICATE_USER: Final = "urn:interlock:test:client"
STARTUP_TIMEOUT: Final = 60.0
_START_ATTEMPTS: Final = 3  # starts on fresh ports when one was taken meanwhile
_LIFETIME: Final = timedelta(days=1)


@dataclass(frozen=True)
class ServerIdentity:
    """A certificate the node presents instead of its own: e.g. one a deployment's PKI
    issued for 127.0.0.1, for a manifest that trusts the broker with ``ca: pki:internal``."""

    chain_pem: bytes  # the certificate, then the CA certificates up to ``ca_pem``
    key_pem: bytes = field(repr=False)
    ca_pem: bytes  # the CA clients verify the node with


def unavailable() -> str | None:
    """Why no node can be started here (a sentence), or ``None`` when one can."""
    if not SERVER.is_file() or not CTL.is_file():
        return "rabbitmq-server is not installed (Debian: apt-get install rabbitmq-server)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            return f"rabbitmq-server runs as the {SERVICE_USER!r} user, which does not exist"
    return None


@contextmanager
def started(
    directory: Path,
    *,
    client_ca: bytes | None = None,
    server: ServerIdentity | None = None,
    certificate_users: Sequence[str] = (),
    port: int | None = None,
) -> Iterator[TlsBroker]:
    """A running node; client files under ``directory``; stopped and removed on exit.

    ``client_ca`` (PEM) is another CA whose client certificates the node
    accepts besides its own: a deployment's PKI, for services that present
    the certificates it issues (``client_cert: pki:auto``). ``server`` is the
    certificate the node presents (default: one from its own CA; the yielded
    ``ca_file`` is the CA that verifies it). ``certificate_users`` are more
    password-less users for SASL EXTERNAL: the common names of the client
    certificates that will connect (a deployment's ``spiffe://.../operator``).
    ``port`` is the TLS listener's (default: a free one).
    """
    reason = unavailable()
    if reason is not None:
        raise RuntimeError(reason)
    node = ""
    home = Path(tempfile.mkdtemp(prefix="interlock-rabbitmq-"))
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = {}
    try:
        client = _write_pki(directory, home, server)
        if client_ca is not None:
            with (home / "ca.pem").open("ab") as trusted:
                trusted.write(client_ca)
        listener = port
        for attempt in range(1, _START_ATTEMPTS + 1):
            # A free port can be taken by someone else's outgoing connection before the
            # node binds it: then the node exits at once, and starts again on new ports.
            node = f"interlock-{secrets.token_hex(4)}@localhost"
            listener = port or free_port()
            env = _environment(home, node, listener, free_port())
            _give_to_service_user(home)
            log_file = directory / "rabbitmq-server.log"
            with log_file.open("wb") as log:
                process = subprocess.Popen(  # noqa: S603  (fixed binary, argument list)
                    [str(SERVER)],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=home,
                    start_new_session=True,
                )
                try:
                    _wait_ready(process, listener, client, directory)
                    break
                except RuntimeError:
                    if attempt == _START_ATTEMPTS or not _port_taken(process, log_file):
                        raise
                    process = None
        port = listener
        password = secrets.token_urlsafe(24)
        _ctl(env, node, "add_user", USER, stdin=password)
        _ctl(env, node, "set_permissions", "-p", "/", USER, ".*", ".*", ".*")
        # A certificate's user (SASL EXTERNAL) gets a throw-away password, then none.
        for name in (CERTIFICATE_USER, *certificate_users):
            _ctl(env, node, "add_user", name, stdin=secrets.token_urlsafe(24))
            _ctl(env, node, "clear_password", name)
            _ctl(env, node, "set_permissions", "-p", "/", name, ".*", ".*", ".*")
        _ctl(env, node, "delete_user", "guest")
        yield TlsBroker(
            kind="rabbitmq",
            url=f"amqps://{USER}@127.0.0.1:{port}/",
            password=password,
            ca_file=client.ca_file,
            client_cert=client.cert_file,
            client_key=client.key_file,
        )
    finally:
        if process is not None:
            _stop(process, node, env)
        shutil.rmtree(home, ignore_errors=True)


class _ClientFiles:
    def __init__(self, directory: Path) -> None:
        self.ca_file = directory / "ca.pem"
        self.cert_file = directory / "client.pem"
        self.key_file = directory / "client.key"

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _write_pki(directory: Path, home: Path, identity: ServerIdentity | None) -> _ClientFiles:
    """The CA, the node's certificate (in ``home``) and a client certificate (in ``directory``)."""
    ca, ca_key = self_signed_ca("Interlock test RabbitMQ CA", _LIFETIME)
    certificate, key = issue_client_certificate(ca, ca_key, CERTIFICATE_USER, _LIFETIME)
    if identity is None:
        server, server_key = issue_server_certificate(
            ca, ca_key, ["127.0.0.1", "localhost"], _LIFETIME
        )
        identity = ServerIdentity(
            certificate_pem(server), private_key_pem(server_key), certificate_pem(ca)
        )
    directory.mkdir(parents=True, exist_ok=True)
    client = _ClientFiles(directory)
    client.ca_file.write_bytes(identity.ca_pem)
    client.cert_file.write_bytes(certificate_pem(certificate))
    write_private_file(client.key_file, private_key_pem(key))
    (home / "ca.pem").write_bytes(certificate_pem(ca))
    (home / "server.pem").write_bytes(identity.chain_pem)
    write_private_file(home / "server.key", identity.key_pem)
    return client


def _environment(home: Path, node: str, port: int, dist_port: int) -> dict[str, str]:
    (home / "rabbitmq.conf").write_text(
        "listeners.tcp = none\n"
        f"listeners.ssl.default = 127.0.0.1:{port}\n"
        f"ssl_options.cacertfile = {home / 'ca.pem'}\n"
        f"ssl_options.certfile = {home / 'server.pem'}\n"
        f"ssl_options.keyfile = {home / 'server.key'}\n"
        "ssl_options.verify = verify_peer\n"
        "ssl_options.fail_if_no_peer_cert = true\n"
        "ssl_options.versions.1 = tlsv1.3\n"
        "ssl_options.versions.2 = tlsv1.2\n"
        "auth_mechanisms.1 = PLAIN\n"
        "auth_mechanisms.2 = EXTERNAL\n"
        "ssl_cert_login_from = common_name\n"
        "log.console = true\n"
        "log.console.level = warning\n"
        "log.file = false\n"
    )
    (home / "enabled_plugins").write_text("[rabbitmq_auth_mechanism_ssl].\n")
    # Only what the scripts need: no RABBITMQ_* or ERL_* settings of the caller leak in.
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "LC_ALL") if key in os.environ}
    env.update(
        RABBITMQ_NODENAME=node,
        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
        RABBITMQ_NODE_PORT=str(port),
        RABBITMQ_DIST_PORT=str(dist_port),
        # Erlang distribution (rabbitmqctl's channel) on loopback only, on the chosen port.
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=(
            "-kernel inet_dist_use_interface {127,0,0,1}"
            f" -kernel inet_dist_listen_min {dist_port} -kernel inet_dist_listen_max {dist_port}"
        ),
        RABBITMQ_CONFIG_FILE=str(home / "rabbitmq"),
        RABBITMQ_MNESIA_BASE=str(home / "mnesia"),
        RABBITMQ_LOG_BASE=str(home / "log"),
        RABBITMQ_FEATURE_FLAGS_FILE=str(home / "feature_flags"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(home / "enabled_plugins"),
        RABBITMQ_PID_FILE=str(home / "rabbitmq.pid"),
        RABBITMQ_ADVANCED_CONFIG_FILE=str(home / "advanced.config"),
        RABBITMQ_CONF_ENV_FILE=str(home / "rabbitmq-env.conf"),
    )
    return env


def _port_taken(process: subprocess.Popen[bytes], log: Path) -> bool:
    """Whether the node exited because one of its ports was already in use."""
    if process.poll() is None:
        return False
    text = log.read_text(encoding="utf-8", errors="replace")
    return "already_used" in text or "eaddrinuse" in text


def _give_to_service_user(home: Path) -> None:
    """Let the ``rabbitmq`` user (the node, when started by root) read and write ``home``."""
    (home / "mnesia").mkdir(exist_ok=True)
    (home / "log").mkdir(exist_ok=True)
    if os.geteuid() != 0:
        return
    account = pwd.getpwnam(SERVICE_USER)
    home.chmod(0o755)
    for path in (home, *home.iterdir()):
        os.chown(path, account.pw_uid, account.pw_gid)


def _wait_ready(
    process: subprocess.Popen[bytes], port: int, client: _ClientFiles, directory: Path
) -> None:
    """Until a TLS handshake with the client certificate succeeds on ``port``."""
    context = client.context()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = directory / "rabbitmq-server.log"
            raise RuntimeError(f"rabbitmq-server exited ({process.returncode}); see {log}")
        with (
            suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=2) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(b"AMQP\x00\x00\x09\x01")  # AMQP 0-9-1 protocol header
            if tls.recv(8):  # the broker answered (connection.start): it is serving
                return
        time.sleep(0.2)
    raise RuntimeError(f"rabbitmq-server did not start in {STARTUP_TIMEOUT:.0f} s")


def _ctl(env: dict[str, str], node: str, *args: str, stdin: str | None = None) -> None:
    result = subprocess.run(  # noqa: S603  (fixed binary, argument list)
        [str(CTL), "-n", node, *args],
        env=env,
        input=None if stdin is None else stdin.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        # The password is only ever on stdin; the output never contains it.
        raise RuntimeError(f"rabbitmqctl {args[0]} failed: {result.stderr.decode()[-500:]}")


def _stop(process: subprocess.Popen[bytes], node: str, env: dict[str, str]) -> None:
    """``rabbitmqctl stop``; failing that, kill the node's process group (it is ours)."""
    with suppress(subprocess.TimeoutExpired, OSError):
        subprocess.run(  # noqa: S603  (fixed binary, argument list)
            [str(CTL), "-n", node, "stop"], env=env, capture_output=True, timeout=30, check=False
        )
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
