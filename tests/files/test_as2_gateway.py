"""The gateway's AS2 endpoint over HTTP, and asynchronous MDNs in both directions."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import threading
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import RawTestServer
from aiohttp.web import BaseRequest, Response
from joserfc.jwk import ECKey
from sqlalchemy import Engine, create_engine

from interlock.audit import MemorySink
from interlock.config.settings import Settings
from interlock.errors import Refusal
from interlock.files.as2_async import As2Messages
from interlock.files.as2_outbox import send_outbox
from interlock.files.as2_send import Sent
from interlock.files.notify import summary
from interlock.files.tables import As2MessageRow
from interlock.files.transfers import Outbox
from interlock.gateway.as2_api import As2Endpoint, build_as2_endpoint
from interlock.gateway.problems import problem_response
from interlock.oauth.signing_keys import SigningKeys
from interlock.replay.seen import MemorySeen
from interlock.sdk.rfc9421 import RequestSigner, SignedRequests
from interlock.store import initialise
from interlock.store.base import table_of
from interlock.testing.tls import https_server
from tests.files.as2_support import (
    ORDERS,
    Keys,
    flow,
    manifest,
    openssl,
    openssl_message,
    payload,
    vault,
)
from tests.privacy.test_webhook_connector import Handler, verify

pytestmark = pytest.mark.processes

OUTBOUND = "edi-invoices"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A store with the AS2 message table."""
    created = create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    table_of(As2MessageRow).create(created)
    yield created
    created.dispose()


class _PartnerInbox(BaseHTTPRequestHandler):
    """ACME's server: takes our messages (async MDN later) and our asynchronous MDNs."""

    received: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            self.received.append((self.path, dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        """Quiet."""


def _endpoint(
    keys: Keys,
    engine: Engine,
    tmp_path: Path,
    port: int,
    *,
    notify: dict[str, object] | None = None,
    notify_auth: Callable[[], httpx.Auth] | None = None,
) -> tuple[As2Endpoint, MemorySink]:
    loaded = manifest(
        keys,
        partner={
            "url": f"https://localhost:{port}/as2",
            "mdn": "async",
            "mdn_url": "https://gateway.example/v1/as2/edi-invoices/mdn",
        },
        outbound=OUTBOUND,
        notify=notify,
    )
    audit = MemorySink()
    endpoint = build_as2_endpoint(
        loaded,
        resolve=vault(keys),
        anchors={},
        manifest_dir=keys.folder,
        files_root=tmp_path / "files",
        engine=engine,
        seen=MemorySeen(),
        audit=audit,
        notify_auth=notify_auth,
    )
    assert endpoint is not None
    return endpoint, audit


async def _post(
    endpoint: As2Endpoint, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, str], bytes]:
    async def handle(request: BaseRequest) -> Response:
        try:
            return await endpoint(request)
        except Refusal as refusal:
            return problem_response(refusal, "test", request.path)

    async with (
        RawTestServer(handle) as server,
        ClientSession() as session,
        session.post(server.make_url(path), headers=headers, data=body) as response,
    ):
        return response.status, dict(response.headers.items()), await response.read()


def test_the_endpoint_answers_an_openssl_message_with_a_signed_mdn(
    keys: Keys, engine: Engine, tmp_path: Path
) -> None:
    """POST /v1/as2/edi-orders: accepted, the MDN in the answer verifies with OpenSSL."""
    endpoint, _ = _endpoint(keys, engine, tmp_path, 1)
    headers, body = openssl_message(keys, payload())
    status, answer_headers, answer = asyncio.run(
        _post(endpoint, "/v1/as2/edi-orders", headers, body)
    )
    assert status == 200
    assert answer_headers["AS2-From"] == "EXAMPLE"
    entity = f"Content-Type: {answer_headers['Content-Type']}\r\n\r\n".encode() + answer
    report = openssl("cms", "-verify", "-CAfile", keys.file("ca.pem"), "-certfile",
                     keys.file("ours.pem"), "-nointern", stdin=entity)  # fmt: skip
    assert b"processed" in report
    assert (tmp_path / "files" / "processing" / "edi-orders" / "orders.csv").read_bytes() == ORDERS


def test_the_endpoint_refuses_strangers_with_a_problem(
    keys: Keys, engine: Engine, tmp_path: Path
) -> None:
    """An unknown partner: 403 problem+json, nothing in processing; unknown path: 404."""
    endpoint, audit = _endpoint(keys, engine, tmp_path, 1)
    headers, body = openssl_message(keys, payload())
    headers["as2-from"] = "GLOBEX"
    status, answer_headers, answer = asyncio.run(
        _post(endpoint, "/v1/as2/edi-orders", headers, body)
    )
    assert status == 403
    assert answer_headers["Content-Type"] == "application/problem+json"
    assert json.loads(answer)["detail"] == "unknown AS2 partner"
    assert not (tmp_path / "files" / "processing" / "edi-orders").exists() or not list(
        (tmp_path / "files" / "processing" / "edi-orders").iterdir()
    )
    assert [e.reason for e in audit.entries if e.action == "files.as2.receive"]
    status, _, _ = asyncio.run(_post(endpoint, "/v1/as2/nothing", headers, body))
    assert status == 404


def test_an_asynchronous_mdn_goes_to_the_partner(
    keys: Keys, engine: Engine, tmp_path: Path
) -> None:
    """Receipt-Delivery-Option on the partner's origin: the signed MDN is POSTed there."""
    _PartnerInbox.received.clear()
    with https_server(_PartnerInbox, keys.tls) as server:
        port = server.server_address[1]
        endpoint, audit = _endpoint(keys, engine, tmp_path, port)
        headers, body = openssl_message(keys, payload())
        headers["receipt-delivery-option"] = f"https://localhost:{port}/mdn"

        async def exchange() -> int:
            status, _, _ = await _post(endpoint, "/v1/as2/edi-orders", headers, body)
            receiver, _ = endpoint.receivers["edi-orders"]
            await receiver.drain()
            return status

        assert asyncio.run(exchange()) == 200
    ((path, mdn_headers, mdn_body),) = _PartnerInbox.received
    assert path == "/mdn"
    entity = f"Content-Type: {mdn_headers['Content-Type']}\r\n\r\n".encode() + mdn_body
    report = openssl("cms", "-verify", "-CAfile", keys.file("ca.pem"), "-certfile",
                     keys.file("ours.pem"), "-nointern", stdin=entity)  # fmt: skip
    assert b"processed" in report
    assert any(e.action == "files.as2.mdn_sent" and e.outcome.result == "success"
               for e in audit.entries)  # fmt: skip


def test_an_mdn_url_elsewhere_is_refused(keys: Keys, engine: Engine, tmp_path: Path) -> None:
    """An async MDN to another origin than the partner's: refused, never posted (no SSRF)."""
    endpoint, _ = _endpoint(keys, engine, tmp_path, 1)
    headers, body = openssl_message(keys, payload())
    headers["receipt-delivery-option"] = "https://169.254.169.254/latest"
    status, _, _ = asyncio.run(_post(endpoint, "/v1/as2/edi-orders", headers, body))
    assert status == 400


def _openssl_mdn(keys: Keys, sent: Sent, mic: str | None = None) -> tuple[dict[str, str], bytes]:
    report = (
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="b1"'
        "\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nReceived.\r\n--b1\r\n"
        "Content-Type: message/disposition-notification\r\n\r\n"
        f"Original-Message-ID: {sent.message_id}\r\n"
        f"Received-Content-MIC: {mic or sent.mic}\r\n"
        "Disposition: automatic-action/MDN-sent-automatically; processed\r\n\r\n--b1--\r\n"
    ).encode()
    mdn = openssl("cms", "-sign", "-md", "sha256", "-signer", keys.file("acme.pem"),
                  "-inkey", keys.file("acme.key"), stdin=report)  # fmt: skip
    head, body = re.split(rb"\r?\n\r?\n", mdn, maxsplit=1)
    found = re.search(rb"Content-Type:\s*(.+)", head, re.I)
    assert found is not None
    headers = {
        "AS2-From": "ACME",
        "AS2-To": "EXAMPLE",
        "Content-Type": found.group(1).decode().strip(),
    }
    return headers, body


@pytest.mark.parametrize("right_mic", [True, False])
def test_an_asynchronous_mdn_settles_what_we_sent(
    keys: Keys, engine: Engine, tmp_path: Path, right_mic: bool
) -> None:
    """Sent with mdn: async, awaiting; OpenSSL's MDN with our MIC confirms, another refuses."""
    _PartnerInbox.received.clear()
    messages = As2Messages(engine)
    with https_server(_PartnerInbox, keys.tls) as server:
        port = server.server_address[1]
        endpoint, audit = _endpoint(keys, engine, tmp_path, port)
        loaded = manifest(keys, partner={"url": f"https://localhost:{port}/as2", "mdn": "async",
                          "mdn_url": "https://gateway.example/v1/as2/edi-invoices/mdn"},
                          outbound=OUTBOUND)  # fmt: skip
        outbox = Outbox(tmp_path / "files", OUTBOUND)
        (outbox.pending_dir / "invoice.csv").write_bytes(ORDERS)
        (sent,) = asyncio.run(send_outbox(flow(keys, loaded, OUTBOUND), outbox, audit=audit,
                                          messages=messages))  # fmt: skip
    assert messages.state(sent.message_id) == "awaiting"
    ((_, headers, _),) = _PartnerInbox.received
    assert headers["Receipt-Delivery-Option"].endswith("/v1/as2/edi-invoices/mdn")
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode() + ", sha-256"
    mdn_headers, mdn_body = _openssl_mdn(keys, sent, None if right_mic else wrong)
    status, _, _ = asyncio.run(_post(endpoint, "/v1/as2/edi-invoices/mdn", mdn_headers, mdn_body))
    assert status == 200
    assert messages.state(sent.message_id) == ("confirmed" if right_mic else "refused")
    (entry,) = [e for e in audit.entries if e.action == "files.as2.mdn"]
    assert entry.outcome.result == ("success" if right_mic else "failure")


@pytest.fixture
def signing(tmp_path: Path) -> Iterator[SigningKeys]:
    """Interlock's OAuth signing keys (ES256): what signs the rejection reports' webhooks."""
    created = initialise(
        Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 's.db'}")
    )
    keys = SigningKeys(created.engine, created.keyring, "ES256")
    keys.ensure()
    yield keys
    created.close()


def test_a_file_refused_over_as2_is_reported_to_the_partner_as_it_declared(
    keys: Keys, engine: Engine, tmp_path: Path, signing: SigningKeys
) -> None:
    """A verified message whose CSV the quarantine refuses: a negative MDN, and the partner's
    notify: webhook gets the rejection report — signed (RFC 9421), audited, reasons kept."""

    def auth() -> httpx.Auth:
        current = signing.signer()
        assert isinstance(current.key, ECKey)
        return SignedRequests(RequestSigner(current.kid, current.key))

    Handler.seen, Handler.script = [], []
    with https_server(Handler, keys.tls) as server:
        port = server.server_address[1]
        webhook = {"url": f"https://localhost:{port}/rejections", "ca": f"file:{keys.tls.ca_file}"}
        endpoint, audit = _endpoint(
            keys, engine, tmp_path, port, notify={"webhook": webhook}, notify_auth=auth
        )
        bad = b"order_id,email,total\r\n=1+1,a@example.com,3\r\n"
        headers, body = openssl_message(keys, payload(data=bad))

        async def exchange() -> tuple[int, dict[str, str], bytes]:
            answer = await _post(endpoint, "/v1/as2/edi-orders", headers, body)
            assert endpoint.notifier is not None
            await endpoint.notifier.wait()  # the report goes out after the MDN
            return answer

        status, answer_headers, answer = asyncio.run(exchange())
    assert status == 200
    entity = f"Content-Type: {answer_headers['Content-Type']}\r\n\r\n".encode() + answer
    report = openssl("cms", "-verify", "-CAfile", keys.file("ca.pem"), "-certfile",
                     keys.file("ours.pem"), "-nointern", stdin=entity)  # fmt: skip
    assert b"processed/error: unexpected-processing-error" in report
    assert endpoint.notifier is not None
    (state_file,) = (tmp_path / "files" / "notify" / "edi-orders").glob("*.json")
    stored = state_file.name.removesuffix(".json")
    state = endpoint.notifier.state("edi-orders", stored)
    assert state is not None
    facts = state["facts"]
    assert (tmp_path / "files" / "refused" / "edi-orders" / stored).exists()
    (seen,) = Handler.seen
    assert seen.path == "/rejections"
    assert '"content-digest"' in verify(seen, port, signing)
    assert seen.headers["Idempotency-Key"] == facts["correlation_id"]
    document = json.loads(seen.body)
    assert document["type"] == "interlock.files.rejection"
    assert document["integration"] == "edi-orders"
    assert document["file"] == "orders.csv"
    assert document["reasons"] == facts["reasons"]
    assert document["reasons"]
    assert b"a@example.com" not in seen.body  # never the file's content
    (entry,) = [e for e in audit.entries if e.action == "files.notify"]
    assert entry.outcome.result == "success"
    assert entry.details["way"] == "webhook"
    assert entry.details["partner"] == "acme"
    assert entry.integration == "edi-orders"
    told = summary(endpoint.notifier.state("edi-orders", stored))
    assert told is not None
    assert told["state"] == "sent"


def test_a_compressed_bomb_is_answered_decompression_failed_and_never_processed(
    keys: Keys, engine: Engine, tmp_path: Path
) -> None:
    """256 MiB of zeros in ~250 KiB, signed and encrypted by ACME: the MDN says
    ``decompression-failed`` (the integration's max_size is 50 MiB); nothing reaches processing."""
    from asn1crypto import cms as asn1_cms  # type: ignore[import-untyped]

    squeeze = zlib.compressobj(9)
    chunk = b"\0" * (1 << 20)
    stream = b"".join(squeeze.compress(chunk) for _ in range(256)) + squeeze.flush()
    der = asn1_cms.ContentInfo(
        {
            "content_type": "compressed_data",
            "content": {
                "version": "v0",
                "compression_algorithm": {"algorithm": "zlib"},
                "encap_content_info": {"content_type": "data", "content": stream},
            },
        }
    ).dump()
    bomb = (
        b"Content-Type: application/pkcs7-mime; smime-type=compressed-data\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(der).replace(b"\n", b"\r\n")
    )
    endpoint, audit = _endpoint(keys, engine, tmp_path, 1)
    headers, body = openssl_message(keys, bomb)
    status, answer_headers, answer = asyncio.run(
        _post(endpoint, "/v1/as2/edi-orders", headers, body)
    )
    assert status == 200
    entity = f"Content-Type: {answer_headers['Content-Type']}\r\n\r\n".encode() + answer
    report = openssl("cms", "-verify", "-CAfile", keys.file("ca.pem"), "-certfile",
                     keys.file("ours.pem"), "-nointern", stdin=entity)  # fmt: skip
    assert b"processed/error: decompression-failed" in report
    (entry,) = [e for e in audit.entries if e.action == "files.as2.receive"]
    assert entry.reason is not None
    assert entry.reason.startswith("decompression-failed: the compressed content expands beyond")
    processing = tmp_path / "files" / "processing" / "edi-orders"
    assert not processing.exists() or not list(processing.iterdir())
