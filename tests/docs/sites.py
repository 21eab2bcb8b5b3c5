"""The hosts the example manifest and the README name, stood up on this machine.

* :class:`Broker`: the example's RabbitMQ (``brokers: events``), a node of this
  machine's ``rabbitmq-server`` (:mod:`interlock.testing.rabbitmq_node`) on the
  port the session's manifest names: TLS only, presenting a server certificate
  the deployment's PKI issued (the example trusts it with ``ca: pki:internal``),
  accepting the client certificates of that PKI, with a password-less user
  (SASL EXTERNAL) for the operator's certificate, as a broker configured for
  ``client_cert: pki:auto`` has. It starts at the first ``interlock messaging``
  line, once the deployment and its CA exist.
* :func:`sshd`: a partner's SFTP host, Debian's ``sshd`` on a free loopback port
  with a host key made now (``make sshd`` installs it).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from interlock.config.settings import Settings
from interlock.testing import rabbitmq_node
from tests.docs.runner import Session, free_port
from tests.docs.shell import Step

__all__ = ["SSHD", "Broker", "sshd"]

SSHD: Final = Path("/usr/sbin/sshd")
_SSHD_CONFIG: Final = """\
ListenAddress 127.0.0.1
Port {port}
HostKey {host_key}
PidFile none
AuthorizedKeysFile none
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
AllowTcpForwarding no
X11Forwarding no
LogLevel ERROR
"""


@contextmanager
def sshd(folder: Path) -> Iterator[int]:
    """``sshd`` on a free loopback port (yielded), with a new Ed25519 host key; no logins."""
    if os.geteuid() == 0:  # sshd started by root checks its privilege separation directory
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    host_key = folder / "host_key"
    host_key.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()
        )
    )
    host_key.chmod(0o600)
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(_SSHD_CONFIG.format(port=port, host_key=host_key), encoding="ascii")
    log = folder / "sshd.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603  (the fixed sshd binary, an argument list)
            [str(SSHD), "-D", "-e", "-f", str(config)], stdout=output, stderr=output
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"sshd exited: {log.read_text(errors='replace')[:500]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("sshd did not start listening") from None
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Broker:
    """The example's RabbitMQ, started on ``port`` when a document first needs it."""

    CERTIFICATE_NAME: ClassVar[str] = "127.0.0.1"  # its server certificate (not a document's)

    port: int = field(default_factory=free_port)
    _stack: ExitStack = field(default_factory=ExitStack)
    _started: bool = False

    def before(self, run: Session, step: Step) -> None:
        """Start the node before the first ``interlock messaging`` line."""
        if not self._started and step.argv[:2] == ["interlock", "messaging"]:
            self._started = True
            self._start(run)

    def _start(self, run: Session) -> None:
        root = run.data_dir / "ca.pem"  # pki:internal: written by `interlock serve`
        if not root.exists():
            raise RuntimeError(
                "no DATA_DIR/ca.pem (pki:internal): serve the gateway before messaging lines"
            )
        folder = run.work.parent / "broker"
        issued = run.interlock(
            "pki", "issue", "server", self.CERTIFICATE_NAME, "--out", str(folder)
        )
        if issued.status != 0:
            raise RuntimeError(f"the broker's certificate: {issued.stderr}")
        server = rabbitmq_node.ServerIdentity(
            chain_pem=(folder / f"{self.CERTIFICATE_NAME}.pem").read_bytes(),
            key_pem=(folder / f"{self.CERTIFICATE_NAME}.key").read_bytes(),
            ca_pem=root.read_bytes(),
        )
        domain = run.env.get(
            "INTERLOCK_TRUST_DOMAIN", Settings.model_fields["trust_domain"].default
        )
        self._stack.enter_context(
            rabbitmq_node.started(
                folder / "node",
                client_ca=root.read_bytes(),
                server=server,
                certificate_users=[f"spiffe://{domain}/operator"],  # operator commands
                port=self.port,
            )
        )

    def stop(self) -> None:
        """Stop the node if it was started."""
        self._stack.close()
