"""`interlock files transfer` of an outbound AS2 integration: the outbox sent, the MDN checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from interlock.actors import Operator
from interlock.audit.service import AuditLog
from interlock.cli.main import main
from interlock.config.settings import load_settings
from interlock.files.tables import As2MessageRow
from interlock.secrets.vault import Vault
from interlock.store import open_deployment
from interlock.store.base import table_of
from interlock.testing.tls import https_server
from tests.cli.test_evidence import _entries
from tests.conftest import isolate_cli
from tests.files.as2_support import ORDERS, Keys, OpenSslPartner, manifest

pytestmark = pytest.mark.processes

OUTBOUND = "edi-invoices"


def _store_our_key(keys: Keys) -> None:
    deployment = open_deployment(load_settings())
    try:
        log = AuditLog.open(deployment.settings, deployment.keyring)
        try:
            vault = Vault(deployment.engine, deployment.keyring, audit=log.sink)
            vault.write("acme/as2-key", keys.our_key, actor=Operator("admin:t"))
        finally:
            log.close()
    finally:
        deployment.close()


def _states() -> list[str]:
    deployment = open_deployment(load_settings())
    try:
        with deployment.engine.connect() as connection:
            table = table_of(As2MessageRow)
            return [row.state for row in connection.execute(select(table.c.state))]
    finally:
        deployment.close()


@pytest.mark.parametrize("mdn", ["sync", "async"])
def test_transfer_sends_the_outbox_over_as2(
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mdn: str,
) -> None:
    """The file goes to OpenSSL's partner: confirmed by its MDN (sync) or awaiting it (async)."""
    isolate_cli(monkeypatch, tmp_path)
    assert main(["init"]) == 0
    _store_our_key(keys)
    outbox = load_settings().data_dir / "files" / "outbox" / OUTBOUND
    outbox.mkdir(parents=True)
    (outbox / "invoice.csv").write_bytes(ORDERS)
    OpenSslPartner.keys, OpenSslPartner.mic_override = keys, None
    OpenSslPartner.received.clear()
    with https_server(OpenSslPartner, keys.tls) as server:
        partner = {"url": f"https://localhost:{server.server_address[1]}/as2", "mdn": mdn}
        if mdn == "async":
            partner["mdn_url"] = "https://gateway.example/v1/as2/edi-invoices/mdn"
        manifest(keys, partner=partner, outbound=OUTBOUND)
        capsys.readouterr()
        status = main(["files", "transfer", OUTBOUND, "-m", str(keys.folder / "interlock.yaml")])
    out = capsys.readouterr().out
    assert status == 0
    assert ("confirmed" if mdn == "sync" else "awaiting MDN") in out
    assert len(OpenSslPartner.received) == 1
    assert not (outbox / "invoice.csv").exists()
    assert (outbox.parent.parent / "sent" / OUTBOUND / "invoice.csv").read_bytes() == ORDERS
    assert _states() == ([] if mdn == "sync" else ["awaiting"])
    sends = [e for e in _entries() if e["action"] == "files.as2.send"]
    assert [e["outcome"]["result"] for e in sends] == ["success"]
