"""SFTP against OpenSSH: Interlock pulls from and pushes to Debian's ``sshd``; OpenSSH's
``sftp`` client uploads to Interlock's drop server.

The ``sshd`` runs as a test-owned process on a free loopback port with its own
host key and configuration (public keys only, ``internal-sftp``, no PAM), as
the user running the tests (no chroot: that needs a root-owned path without
world-writable parents, and ``/tmp`` is one). Without ``/usr/sbin/sshd``
(``make sshd`` installs it) the tests skip, or fail under
``INTERLOCK_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

from interlock.audit import MemorySink
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.files.drop_server import DropServer
from interlock.files.host_keys import HostKeyError
from interlock.files.quarantine import Quarantine
from interlock.files.transfers import Outbox, transfer_once
from interlock.testing.services import require_env
from tests.files.sftp_support import MANIFEST, Keys, Received, private_pem, public_line

pytestmark = pytest.mark.processes

SSHD = Path("/usr/sbin/sshd")
ORDERS = b"order_id,email,total\n1,a@example.com,3\n"
_CONFIG = """\
ListenAddress 127.0.0.1
Port {port}
HostKey {host_key}
PidFile none
AuthorizedKeysFile {authorized}
AllowUsers {user}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
AllowTcpForwarding no
X11Forwarding no
Subsystem sftp internal-sftp
LogLevel ERROR
"""


@dataclass(frozen=True)
class OpenSsh:
    """A running sshd: its port, the keys, and the directory it serves."""

    port: int
    keys: Keys
    root: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sshd exited: {log.read_text(errors='replace')[:500]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail("sshd did not start listening")


@pytest.fixture(scope="module")
def openssh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSsh]:
    """Debian's sshd on a free loopback port, for the module."""
    if not SSHD.exists():
        reason = "OpenSSH's sshd is not installed (make sshd, or apt-get install openssh-server)"
        if require_env():
            pytest.fail(f"required service missing: {reason}")
        pytest.skip(reason)
    if os.geteuid() == 0:  # sshd started by root checks its privilege separation directory
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    folder = tmp_path_factory.mktemp("openssh")
    keys = Keys()
    host_key = folder / "host_key"
    keys.partner_host.write_private_key(str(host_key))
    host_key.chmod(0o600)
    authorized = folder / "authorized_keys"
    authorized.write_text(public_line(keys.client) + "\n", encoding="ascii")
    port = _free_port()
    config = folder / "sshd_config"
    config.write_text(
        _CONFIG.format(port=port, host_key=host_key, authorized=authorized, user=getpass.getuser()),
        encoding="ascii",
    )
    log = folder / "sshd.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603  (the fixed sshd binary, an argument list)
            [str(SSHD), "-D", "-e", "-f", str(config)], stdout=output, stderr=output
        )
    try:
        _wait_for(port, process, log)
        yield OpenSsh(port, keys, folder / "partner")
    finally:
        process.terminate()
        process.wait(timeout=10)


def _manifest(
    tmp_path: Path, openssh: OpenSsh, *, host_key: asyncssh.SSHKey | None = None
) -> Manifest:
    """The SFTP test manifest pointed at sshd: our user, the partner's paths under ``tmp_path``."""
    keys = openssh.keys
    text = MANIFEST.format(
        sftp_port=openssh.port,
        sftp_host_key=public_line(host_key or keys.partner_host),
        acme_drop_key=public_line(keys.acme),
        globex_drop_key=public_line(keys.globex),
    )
    text = text.replace("user: interlock", f"user: {getpass.getuser()}")
    text = text.replace("/outbound/orders", str(tmp_path / "partner" / "outbound"))
    text = text.replace("remote_path: /inbound", f"remote_path: {tmp_path / 'partner' / 'inbound'}")
    for folder in ("outbound", "inbound"):
        (tmp_path / "partner" / folder).mkdir(parents=True, exist_ok=True)
    path = tmp_path / "interlock.yaml"
    path.write_text(text, encoding="utf-8")
    return load_manifest(path)


def test_pull_from_openssh(openssh: OpenSsh, tmp_path: Path) -> None:
    """A file and its checksum on sshd: pulled into processing, then deleted on the server."""
    loaded = _manifest(tmp_path, openssh)
    outbound = tmp_path / "partner" / "outbound"
    (outbound / "orders.csv").write_bytes(ORDERS)
    digest = hashlib.sha256(ORDERS).hexdigest()
    (outbound / "orders.csv.sha256").write_text(f"{digest}  orders.csv\n")
    audit = MemorySink()
    quarantine = Quarantine(tmp_path / "files", loaded, "nightly-orders", audit=audit)
    verdicts = asyncio.run(
        transfer_once(
            loaded,
            "nightly-orders",
            private_pem(openssh.keys.client),
            audit=audit,
            quarantine=quarantine,
        )
    )
    assert [v.accepted for v in verdicts] == [True]
    assert [p.name for p in quarantine.processing()] == ["orders.csv"]
    assert sorted(outbound.iterdir()) == []


def test_push_to_openssh(openssh: OpenSsh, tmp_path: Path) -> None:
    """The outbox pushed to sshd: the file arrives whole under its name, nothing else left."""
    loaded = _manifest(tmp_path, openssh)
    outbox = Outbox(tmp_path / "files", "orders-out")
    (outbox.pending_dir / "confirm.csv").write_bytes(ORDERS)
    audit = MemorySink()
    asyncio.run(
        transfer_once(
            loaded, "orders-out", private_pem(openssh.keys.client), audit=audit, outbox=outbox
        )
    )
    inbound = tmp_path / "partner" / "inbound"
    assert [p.name for p in inbound.iterdir()] == ["confirm.csv"]
    assert (inbound / "confirm.csv").read_bytes() == ORDERS
    (entry,) = audit.entries
    assert entry.action == "files.send"


def test_a_changed_openssh_host_key_fails_closed(openssh: OpenSsh, tmp_path: Path) -> None:
    """Another key pinned than sshd's: refused before authentication, nothing moves."""
    loaded = _manifest(tmp_path, openssh, host_key=asyncssh.generate_private_key("ssh-ed25519"))
    (tmp_path / "partner" / "outbound" / "orders.csv").write_bytes(ORDERS)
    quarantine = Quarantine(tmp_path / "files", loaded, "nightly-orders", audit=MemorySink())
    with pytest.raises(HostKeyError):
        asyncio.run(
            transfer_once(
                loaded,
                "nightly-orders",
                private_pem(openssh.keys.client),
                audit=MemorySink(),
                quarantine=quarantine,
            )
        )
    assert (tmp_path / "partner" / "outbound" / "orders.csv").exists()
    assert quarantine.processing() == []


def test_openssh_sftp_client_uploads_to_the_drop_server(tmp_path: Path) -> None:
    """OpenSSH's ``sftp`` client, host key pinned, uploads to the drop server; listing is refused."""
    client = shutil.which("sftp")
    if client is None:
        if require_env():
            pytest.fail("required service missing: OpenSSH's sftp client")
        pytest.skip("OpenSSH's sftp client is not installed (apt-get install openssh-client)")
    keys = Keys()
    identity = tmp_path / "acme_key"
    keys.acme.write_private_key(str(identity))
    identity.chmod(0o600)
    (tmp_path / "orders.csv").write_bytes(ORDERS)
    received = Received()

    async def main() -> tuple[tuple[int, str], tuple[int, str]]:
        server = DropServer(
            tmp_path / "files",
            _drop_manifest(tmp_path, keys),
            host_key=private_pem(keys.drop_host),
            receive=received.drop,
            audit=MemorySink(),
        )
        port = await server.start()
        known = tmp_path / "known_hosts"
        known.write_text(f"[127.0.0.1]:{port} {public_line(keys.drop_host)}\n", encoding="ascii")
        try:
            put = await _sftp(client, identity, known, port, tmp_path, "put orders.csv\n")
            listing = await _sftp(client, identity, known, port, tmp_path, "ls\n")
        finally:
            await server.stop()
        return put, listing

    put, listing = asyncio.run(main())
    assert put[0] == 0, put[1]
    assert received.files == [("acme", "orders.csv", ORDERS)]
    # upload-only: OpenSSH reports the refused listing (its batch mode does not abort on ls)
    assert "Permission denied" in listing[1]


def _drop_manifest(tmp_path: Path, keys: Keys) -> Manifest:
    path = tmp_path / "interlock.yaml"
    path.write_text(
        MANIFEST.format(
            sftp_port=22,
            sftp_host_key=public_line(keys.partner_host),
            acme_drop_key=public_line(keys.acme),
            globex_drop_key=public_line(keys.globex),
        ),
        encoding="utf-8",
    )
    return load_manifest(path)


async def _sftp(  # noqa: PLR0917
    client: str, identity: Path, known: Path, port: int, cwd: Path, batch: str
) -> tuple[int, str]:
    """Run OpenSSH's sftp in batch mode against the drop server as ``acme``; code and output."""
    process = await asyncio.create_subprocess_exec(
        client,
        "-b", "-",
        "-i", str(identity),
        "-o", f"UserKnownHostsFile={known}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes",
        "-F", "/dev/null",
        "-P", str(port),
        "acme@127.0.0.1",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=cwd,
    )  # fmt: skip
    output, _ = await process.communicate(batch.encode())
    return await process.wait(), output.decode(errors="replace")
