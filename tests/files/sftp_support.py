"""Test support for the SFTP tests: keys generated at run time, a manifest, a recording receiver."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import asyncssh

from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.crypto.pkix import certificate_pem, self_signed_ca
from interlock.files.drop_sidecars import Arrival
from interlock.files.quarantine import Verdict

MANIFEST = """\
version: 1
organisation:
  controller: {{name: Example GmbH, contact: privacy@example.com}}
systems:
  erp: {{url: "https://erp.example:9443", location: DE}}
  crm: {{url: "https://crm.example", location: DE}}
partners:
  acme:
    location: NL
    agreement: "TPA-2025-017 (signed 2025-03-01)"
    sftp:
      host: 127.0.0.1
      port: {sftp_port}
      user: interlock
      host_keys: ["{sftp_host_key}"]
      key: secret://acme/sftp-key
    drop:
      keys: ["{acme_drop_key}"]
  globex:
    location: DE
    agreement: "TPA-2025-020"
    drop:
      keys: ["{globex_drop_key}"]
      upload_only: false
clients:
  file-sync: {{auth: [mtls]}}
integrations:
  nightly-orders:
    type: file_transfer
    source: erp
    target: crm
    client: file-sync
    purpose: Nightly order files from ACME
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: P30D
    files:
      partner: acme
      direction: inbound
      transport: sftp
      remote_path: /outbound/orders
      pattern: "*.csv"
      format: csv
      max_size: 1MiB
      checksum: sha256-sidecar
  orders-out:
    type: file_transfer
    source: erp
    target: crm
    client: file-sync
    purpose: Confirmations sent to ACME
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: P30D
    files:
      partner: acme
      direction: outbound
      transport: sftp
      remote_path: /inbound
      format: csv
      schedule: 1s
  acme-drop:
    type: file_transfer
    source: erp
    target: crm
    client: file-sync
    purpose: Order files ACME uploads
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: P30D
    files:
      partner: acme
      direction: inbound
      transport: drop
      format: csv
      max_size: 64KiB
  globex-drop:
    type: file_transfer
    source: erp
    target: crm
    client: file-sync
    purpose: Files Globex uploads
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: P30D
    files:
      partner: globex
      direction: inbound
      transport: drop
      format: csv
      max_size: 64KiB
"""


def new_key() -> asyncssh.SSHKey:
    """A fresh Ed25519 key pair (never committed)."""
    return asyncssh.generate_private_key("ssh-ed25519")


def public_line(key: asyncssh.SSHKey) -> str:
    """The key's OpenSSH public-key line without a comment."""
    return " ".join(key.export_public_key("openssh").decode("ascii").split()[:2])


def private_pem(key: asyncssh.SSHKey) -> bytes:
    """The private key in OpenSSH format (what the vault would hold)."""
    return bytes(key.export_private_key("openssh"))


@dataclass
class Keys:
    """Every key one test needs."""

    drop_host: asyncssh.SSHKey = field(default_factory=new_key)
    partner_host: asyncssh.SSHKey = field(default_factory=new_key)
    client: asyncssh.SSHKey = field(default_factory=new_key)
    acme: asyncssh.SSHKey = field(default_factory=new_key)
    globex: asyncssh.SSHKey = field(default_factory=new_key)


def manifest(tmp_path: Path, keys: Keys, *, sftp_port: int = 2222) -> Manifest:
    """The test manifest with these keys, validated as the CLI would."""
    path = tmp_path / "interlock.yaml"
    path.write_text(
        MANIFEST.format(
            sftp_port=sftp_port,
            sftp_host_key=public_line(keys.partner_host),
            acme_drop_key=public_line(keys.acme),
            globex_drop_key=public_line(keys.globex),
        ),
        encoding="utf-8",
    )
    return load_manifest(path)


def verdict(data: bytes, *, accepted: bool = True) -> Verdict:
    """A verdict for ``data`` as the quarantine would give it."""
    return Verdict(
        accepted=accepted,
        reasons=() if accepted else ("refused by the test",),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        records=0,
        detected="text",
    )


@dataclass
class Received:
    """A receiver recording what it is handed; refuses names starting with ``bad``."""

    files: list[tuple[str, str, bytes]] = field(default_factory=list)

    async def drop(self, arrival: Arrival) -> Verdict:
        """The drop server's ``receive``."""
        self.files.append((arrival.partner, arrival.name, arrival.data))
        return verdict(arrival.data, accepted=not arrival.name.startswith("bad"))


class PartnerServer:
    """An asyncssh SFTP server standing in for the partner's (test_openssh.py uses sshd)."""

    def __init__(self, root: Path, host_key: asyncssh.SSHKey, client_key: asyncssh.SSHKey) -> None:
        """Serve ``root`` (chrooted) to the holder of ``client_key``, as ``host_key``."""
        self.root = root
        self._host_key = host_key
        self._client_key = client_key
        self._listener: asyncssh.SSHAcceptor | None = None

    async def __aenter__(self) -> int:
        """Start listening; the port."""
        root = str(self.root).encode()
        self._listener = await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[self._host_key],
            authorized_client_keys=asyncssh.import_authorized_keys(
                public_line(self._client_key) + "\n"
            ),
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=root),
        )
        return int(self._listener.get_port())

    async def __aexit__(self, *exc: object) -> None:
        """Stop listening."""
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()


def service_users_ssh(home: Path) -> Path:
    """A home whose ``~/.ssh`` would change an SSH client that consulted it; ``home``.

    An X.509 CA in ``ca-bundle.crt`` and ``crt/`` (asyncssh trusts host certificates
    from either unless told not to), a config limiting host-key algorithms to ones the
    tests' servers lack, and an unreadable ``id_ed25519`` that asyncssh would load.
    """
    ssh = home / ".ssh"
    (ssh / "crt").mkdir(parents=True)
    ca, _ = self_signed_ca("A CA the service user happens to trust", timedelta(days=1))
    (ssh / "ca-bundle.crt").write_bytes(certificate_pem(ca))
    (ssh / "crt" / "ca.pem").write_bytes(certificate_pem(ca))
    (ssh / "config").write_text("Host *\n  HostKeyAlgorithms ssh-dss\n", encoding="utf-8")
    (ssh / "id_ed25519").write_text("not a key\n", encoding="utf-8")
    return home
