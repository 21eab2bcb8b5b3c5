"""The AS2 sender against a partner played by OpenSSL behind a test HTTPS server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest

from interlock.audit import MemorySink
from interlock.files.as2_send import As2SendError, send
from interlock.testing.tls import https_server
from tests.files.as2_support import ORDERS, Keys, flow, manifest, openssl

pytestmark = pytest.mark.processes


class _Partner(BaseHTTPRequestHandler):
    """ACME's AS2 server: OpenSSL opens and verifies, then signs an MDN (``mic_override``)."""

    keys: ClassVar[Keys]
    received: ClassVar[list[bytes]] = []
    mic_override: ClassVar[str | None] = None
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        keys = self.keys
        signed = openssl(
            "cms", "-decrypt", "-binary", "-inform", "DER", "-recip", keys.file("acme.pem"),
            "-inkey", keys.file("acme.key"), stdin=body,
        )  # fmt: skip
        content = openssl(
            "cms", "-verify", "-CAfile", keys.file("ca.pem"), "-certfile", keys.file("ours.pem"),
            "-nointern", stdin=signed,
        )  # fmt: skip
        with self.lock:
            self.received.append(content)
        options = self.headers["Disposition-Notification-Options"]
        algorithm = re.search(r"micalg=required, (sha-\d+)", options)
        assert algorithm is not None
        name = algorithm.group(1)
        digest = base64.b64encode(hashlib.new(name.replace("-", ""), content).digest()).decode()
        report = (
            'Content-Type: multipart/report; report-type=disposition-notification; boundary="b1"'
            "\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nReceived.\r\n--b1\r\n"
            "Content-Type: message/disposition-notification\r\n\r\n"
            f"Original-Message-ID: {self.headers['Message-ID']}\r\n"
            f"Received-Content-MIC: {self.mic_override or f'{digest}, {name}'}\r\n"
            "Disposition: automatic-action/MDN-sent-automatically; processed\r\n\r\n--b1--\r\n"
        ).encode()
        mdn = openssl(
            "cms", "-sign", "-md", "sha256", "-signer", keys.file("acme.pem"),
            "-inkey", keys.file("acme.key"), stdin=report,
        )  # fmt: skip
        head, body_out = re.split(rb"\r?\n\r?\n", mdn, maxsplit=1)
        content_type = re.search(rb"Content-Type:\s*(.+)", head, re.I)
        assert content_type is not None
        self.send_response(200)
        self.send_header("Content-Type", content_type.group(1).decode().strip())
        self.send_header("AS2-From", "ACME")
        self.send_header("AS2-To", "EXAMPLE")
        self.send_header("Content-Length", str(len(body_out)))
        self.end_headers()
        self.wfile.write(body_out)

    def log_message(self, *_: object) -> None:
        """Quiet."""


def _send(keys: Keys, port: int, **partner: object) -> tuple[MemorySink, object]:
    loaded = manifest(
        keys, partner={"url": f"https://localhost:{port}/as2", **partner}, direction="outbound"
    )
    audit = MemorySink()
    result = asyncio.run(send(flow(keys, loaded), "orders.csv", ORDERS, audit=audit))
    return audit, result


@pytest.mark.parametrize(
    "profile",
    [
        {},
        {"encryption": "aes256-cbc", "key_transport": "rsa-pkcs1", "signing": "rsa-pkcs1-sha256"},
        {"encryption": "aes128-gcm", "signing": "rsa-pss-sha512"},
    ],
)
def test_openssl_opens_our_message_and_its_mdn_confirms_the_send(
    keys: Keys, profile: dict[str, str]
) -> None:
    """OpenSSL decrypts and verifies what we sent; its signed MDN with our MIC confirms it."""
    _Partner.keys, _Partner.mic_override = keys, None
    _Partner.received.clear()
    with https_server(_Partner, keys.tls) as server:
        audit, sent = _send(keys, server.server_address[1], **profile)
    (content,) = _Partner.received
    assert content.endswith(b"\r\n\r\n" + ORDERS)
    assert b'filename="orders.csv"' in content
    (entry,) = audit.entries
    assert entry.action == "files.as2.send"
    assert entry.outcome.result == "success"
    assert entry.details["sha256"] == hashlib.sha256(ORDERS).hexdigest()
    assert entry.details["mdn"] == "mdn processed"
    assert sent is not None


def test_a_wrong_mic_fails_the_send(keys: Keys) -> None:
    """An MDN whose MIC is not ours: the send fails, audited as a failure."""
    _Partner.keys = keys
    _Partner.mic_override = base64.b64encode(b"\0" * 32).decode() + ", sha-256"
    try:
        with https_server(_Partner, keys.tls) as server, pytest.raises(As2SendError, match="MIC"):
            _send(keys, server.server_address[1])
    finally:
        _Partner.mic_override = None


def test_an_mdn_by_another_key_fails_the_send(keys: Keys, tmp_path: Path) -> None:
    """The partner's certificate pinned: an MDN signed by another certificate is refused."""
    _Partner.keys = keys
    with https_server(_Partner, keys.tls) as server, pytest.raises(As2SendError):
        _send(keys, server.server_address[1], certificate="file:stranger.pem")
