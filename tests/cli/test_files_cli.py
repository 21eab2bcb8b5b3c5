"""`interlock files`: trust-host, a transfer into quarantine, and the quarantine's listing.

The partner's SFTP server is an asyncssh server started by the test on its own
event loop (tests/files/test_openssh.py covers OpenSSH's sshd); the commands run as an
operator would, with the client key in the vault.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from interlock.actors import Operator
from interlock.audit.service import AuditLog
from interlock.cli.main import main
from interlock.config.settings import load_settings
from interlock.files.host_keys import fingerprint
from interlock.secrets.vault import Vault
from interlock.store import open_deployment
from tests.cli.test_evidence import _entries
from tests.conftest import isolate_cli
from tests.files.sftp_support import Keys, PartnerServer, manifest, private_pem, public_line

ORDERS = b"order_id,email,total\n1,a@example.com,3\n"


@pytest.fixture
def partner(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[tuple[Path, Keys, Path]]:
    """A deployment with the client key in the vault, the partner's server, the manifest."""
    isolate_cli(monkeypatch, tmp_path)
    assert main(["init"]) == 0
    keys = Keys()
    root = tmp_path / "partner"
    (root / "outbound" / "orders").mkdir(parents=True)
    loop = asyncio.new_event_loop()
    server = PartnerServer(root, keys.partner_host, keys.client)
    port = loop.run_until_complete(server.__aenter__())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        manifest(tmp_path, keys, sftp_port=port)
        deployment = open_deployment(load_settings())
        try:
            log = AuditLog.open(deployment.settings, deployment.keyring)
            try:
                vault = Vault(deployment.engine, deployment.keyring, audit=log.sink)
                vault.write("acme/sftp-key", private_pem(keys.client), actor=Operator("admin:t"))
            finally:
                log.close()
        finally:
            deployment.close()
        capsys.readouterr()
        yield tmp_path / "interlock.yaml", keys, root
    finally:
        asyncio.run_coroutine_threadsafe(server.__aexit__(None, None, None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_trust_host_shows_the_offered_key_and_its_fingerprint(
    partner: tuple[Path, Keys, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """What the server offers, with the fingerprint ssh-keygen would print; nothing trusted."""
    path, keys, _ = partner
    port = path.read_text().split("port: ", 1)[1].split("\n", 1)[0]
    status, out, err = _run(capsys, "files", "trust-host", "127.0.0.1", "--port", port)
    assert status == 0, err
    line = public_line(keys.partner_host)
    assert f"{fingerprint(line)}  {line}" in out
    assert "compare these fingerprints" in err


def test_transfer_pulls_into_quarantine_and_lists_it(
    partner: tuple[Path, Keys, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A checked file reaches processing; one without its checksum is refused with the reason."""
    path, _, root = partner
    orders = root / "outbound" / "orders"
    (orders / "a.csv").write_bytes(ORDERS)
    (orders / "a.csv.sha256").write_text(hashlib.sha256(ORDERS).hexdigest() + "\n")
    (orders / "b.csv").write_bytes(ORDERS)
    status, out, err = _run(capsys, "files", "transfer", "nightly-orders", "-m", str(path))
    assert status == 0, err
    assert out.count("accepted") == 1
    assert out.count("refused") == 1
    status, out, err = _run(
        capsys, "files", "quarantine", "nightly-orders", "-m", str(path), "--json"
    )
    assert status == 0, err
    listing = json.loads(out)
    assert listing["processing"] == ["a.csv"]
    (refused,) = listing["refused"]
    assert "b.csv" in refused["file"]
    assert any("sha256" in reason for reason in refused["reasons"])
    assert not (orders / "a.csv").exists()  # accepted: removed on the partner
    assert (orders / "b.csv").exists()  # refused: left for the partner to resend
    actions = [e["action"] for e in _entries()]
    assert actions.count("files.receive") == 2
