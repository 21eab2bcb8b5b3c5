"""The AS2 sender against a partner played by OpenSSL behind a test HTTPS server."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import pytest

from interlock.audit import MemorySink
from interlock.files.as2_send import As2SendError, send
from interlock.testing.tls import https_server
from tests.files.as2_support import ORDERS, Keys, OpenSslPartner, flow, manifest, write_crl

pytestmark = pytest.mark.processes


def _send(
    keys: Keys, port: int, audit: MemorySink | None = None, /, **partner: object
) -> tuple[MemorySink, object]:
    loaded = manifest(
        keys, partner={"url": f"https://localhost:{port}/as2", **partner}, direction="outbound"
    )
    audit = MemorySink() if audit is None else audit
    result = asyncio.run(send(flow(keys, loaded), "orders.csv", ORDERS, audit=audit))
    return audit, result


def _failure(audit: MemorySink) -> str:
    """The one audit entry of a failed send; its reason."""
    (entry,) = audit.entries
    assert entry.action == "files.as2.send"
    assert entry.outcome.result == "failure"
    assert entry.reason is not None
    return entry.reason


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
    OpenSslPartner.keys, OpenSslPartner.mic_override = keys, None
    OpenSslPartner.received.clear()
    with https_server(OpenSslPartner, keys.tls) as server:
        audit, sent = _send(keys, server.server_address[1], **profile)
    (content,) = OpenSslPartner.received
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
    OpenSslPartner.keys = keys
    OpenSslPartner.mic_override = base64.b64encode(b"\0" * 32).decode() + ", sha-256"
    audit = MemorySink()
    try:
        with (
            https_server(OpenSslPartner, keys.tls) as server,
            pytest.raises(As2SendError, match="MIC"),
        ):
            _send(keys, server.server_address[1], audit)
    finally:
        OpenSslPartner.mic_override = None
    assert "MIC" in _failure(audit)


def test_an_mdn_by_another_key_fails_the_send(keys: Keys) -> None:
    """The partner's certificate pinned: an MDN signed by another certificate is refused.

    The partner opens the message; its MDN is signed by a certificate of the
    same name from another CA, which the pinned certificate does not match.
    """
    OpenSslPartner.keys, OpenSslPartner.mic_override = keys, None
    OpenSslPartner.received.clear()
    OpenSslPartner.mdn_signer = "stranger"
    audit = MemorySink()
    try:
        with (
            https_server(OpenSslPartner, keys.tls) as server,
            pytest.raises(As2SendError, match="not signed by the partner's certificate"),
        ):
            _send(keys, server.server_address[1], audit)
    finally:
        OpenSslPartner.mdn_signer = "acme"
    assert len(OpenSslPartner.received) == 1
    assert _failure(audit) == "the message is not signed by the partner's certificate"


def test_nothing_is_sent_to_a_certificate_its_crl_revokes(keys: Keys) -> None:
    """The partner CA's CRL revokes its certificate: refused before anything is encrypted."""
    OpenSslPartner.keys, OpenSslPartner.mic_override = keys, None
    OpenSslPartner.received.clear()
    crl = write_crl(keys, "send-revoked.pem", revoke=("acme.pem",))
    with (
        https_server(OpenSslPartner, keys.tls) as server,
        pytest.raises(As2SendError, match="revoked"),
    ):
        _send(keys, server.server_address[1], crl=crl)
    assert OpenSslPartner.received == []


@pytest.mark.parametrize(
    ("certificate", "reason"),
    [
        ("file:expired.pem", "the partner's certificate has expired"),
        ("file:stranger.pem", "the signer does not chain to the partner's trust anchor"),
    ],
)
def test_nothing_is_sent_to_an_expired_or_unanchored_certificate(
    keys: Keys, certificate: str, reason: str
) -> None:
    """No CRL or responder declared: the pinned certificate is still checked before encrypting.

    Expired, or not chained to the partner's ``ca``: refused with the reason,
    audited, and nothing is posted to the partner.
    """
    OpenSslPartner.keys, OpenSslPartner.mic_override = keys, None
    OpenSslPartner.posted = 0
    audit = MemorySink()
    with (
        https_server(OpenSslPartner, keys.tls) as server,
        pytest.raises(As2SendError, match=reason),
    ):
        _send(keys, server.server_address[1], audit, certificate=certificate)
    assert OpenSslPartner.posted == 0
    assert _failure(audit) == reason
