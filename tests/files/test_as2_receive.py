"""The AS2 receiver against messages OpenSSL builds, and its MDNs checked by OpenSSL."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from dataclasses import replace
from pathlib import Path

import pytest

from interlock.audit import MemorySink
from interlock.crypto.cms import load_identity
from interlock.files.as2_mime import entity_of
from interlock.files.as2_receive import As2Answer, As2Receiver, MdnDelivery
from interlock.files.quarantine import Quarantine
from interlock.replay.seen import MemorySeen
from tests.files.as2_support import (
    INTEGRATION,
    ORDERS,
    Keys,
    ReceiverRig,
    flow,
    manifest,
    openssl,
    openssl_message,
    payload,
    receiver,
    write_crl,
)

pytestmark = pytest.mark.processes


def _mdn(keys: Keys, headers: dict[str, str], body: bytes) -> bytes:
    """OpenSSL verifies the MDN by our certificate chained to the CA; the report it signed.

    Text mode (no ``-binary``): in binary mode OpenSSL keeps the CR of the CRLF
    before a MIME boundary in the content (RFC 2046 gives it to the boundary);
    an MDN is CRLF text, which canonicalisation leaves as it is.
    """
    entity = entity_of({k.lower(): v for k, v in headers.items()}, body)
    return openssl(
        "cms", "-verify", "-CAfile", keys.file("ca.pem"),
        "-certfile", keys.file("ours.pem"), "-nointern", stdin=entity,
    )  # fmt: skip


def _field(report: bytes, name: str) -> str:
    found = re.search(rb"^" + name.encode() + rb":\s*(.+?)\r?$", report, re.MULTILINE | re.I)
    assert found is not None, report
    return found.group(1).decode().strip()


def _receive(rig: ReceiverRig, headers: dict[str, str], body: bytes) -> As2Answer:
    return asyncio.run(rig.receiver.receive(headers, body))


def _processing(rig: ReceiverRig) -> list[str]:
    return [path.name for path in rig.quarantine.processing()]


@pytest.mark.parametrize(
    ("cipher", "oaep"), [("-aes-256-cbc", True), ("-aes-256-gcm", True), ("-aes-128-cbc", False)]
)
def test_openssl_message_is_accepted_and_its_mdn_verifies(
    keys: Keys, tmp_path: Path, cipher: str, oaep: bool
) -> None:
    """Signed and encrypted by OpenSSL: accepted into processing; OpenSSL verifies our MDN."""
    rig = receiver(keys, tmp_path, key_transport="rsa-oaep" if oaep else "rsa-pkcs1")
    entity = payload()
    headers, body = openssl_message(keys, entity, cipher=cipher, oaep=oaep)
    answer = _receive(rig, headers, body)
    assert answer.status == 200, answer
    assert _processing(rig) == ["orders.csv"]
    report = _mdn(keys, answer.headers, answer.body)
    assert _field(report, "Disposition").endswith("processed")
    expected = base64.b64encode(hashlib.sha256(entity).digest()).decode()
    assert _field(report, "Received-Content-MIC") == f"{expected}, sha-256"
    assert _field(report, "Original-Message-ID") == headers["message-id"]
    (entry,) = [e for e in rig.audit.entries if e.action == "files.as2.receive"]
    assert entry.outcome.result == "success"
    assert entry.details["sha256"] == hashlib.sha256(ORDERS).hexdigest()


def _refused(rig: ReceiverRig, headers: dict[str, str], body: bytes, keys: Keys) -> str:
    answer = _receive(rig, headers, body)
    assert _processing(rig) == []
    (entry,) = [e for e in rig.audit.entries if e.action == "files.as2.receive"]
    assert entry.outcome.result == "failure"
    assert entry.reason
    if answer.problem is not None:
        return answer.problem
    return _field(_mdn(keys, answer.headers, answer.body), "Disposition")


def test_an_unknown_partner_gets_no_mdn(keys: Keys, tmp_path: Path) -> None:
    """AS2-From of no partner: 403, audited, nothing processed."""
    rig = receiver(keys, tmp_path)
    headers, body = openssl_message(keys, payload())
    headers["as2-from"] = "GLOBEX"
    assert _refused(rig, headers, body, keys) == "unknown AS2 partner"


@pytest.mark.parametrize(
    ("change", "modifier"),
    [
        ({"signer": "expired"}, "authentication-failed"),
        ({"signer": "stranger"}, "authentication-failed"),
        ({"digest": "sha1"}, "integrity-check-failed"),
        ({"cipher": "-des3"}, "decryption-failed"),
        ({"oaep": False}, "decryption-failed"),
        ({"signed": False}, "insufficient-message-security"),
        ({"encrypted": False}, "insufficient-message-security"),
    ],
)
def test_bad_messages_are_refused_with_a_signed_error_mdn(
    keys: Keys, tmp_path: Path, change: dict[str, object], modifier: str
) -> None:
    """Expired or foreign signer, SHA-1, 3DES, PKCS#1 v1.5 unasked, unsigned, unencrypted."""
    rig = receiver(keys, tmp_path)
    headers, body = openssl_message(keys, payload(), **change)  # type: ignore[arg-type]
    disposition = _refused(rig, headers, body, keys)
    assert disposition.endswith(f"processed/error: {modifier}"), disposition


def test_a_replayed_message_id_is_refused(keys: Keys, tmp_path: Path) -> None:
    """The same Message-ID twice: the second is refused and never reaches processing."""
    rig = receiver(keys, tmp_path)
    headers, body = openssl_message(keys, payload())
    assert (_receive(rig, headers, body)).status == 200
    other_headers, other_body = openssl_message(keys, payload("more.csv"))
    answer = _receive(rig, other_headers, other_body)
    report = _mdn(keys, answer.headers, answer.body)
    assert _field(report, "Disposition").endswith("unexpected-processing-error")
    assert _processing(rig) == ["orders.csv"]


def test_a_tampered_message_fails_its_integrity_check(keys: Keys, tmp_path: Path) -> None:
    """Content changed after signing (unencrypted profile): the signature does not verify."""
    rig = receiver(keys, tmp_path, require_encrypted=False)
    headers, body = openssl_message(keys, payload(), encrypted=False)
    tampered = body.replace(b"12.50", b"99.50")
    disposition = _refused(rig, headers, tampered, keys)
    assert "processed/error: authentication-failed" in disposition


def test_a_malformed_file_stays_in_quarantine(keys: Keys, tmp_path: Path) -> None:
    """A verified message whose CSV carries a formula is refused by the quarantine."""
    rig = receiver(keys, tmp_path)
    headers, body = openssl_message(keys, payload(data=b"order_id,email,total\r\n=1+1,a,b\r\n"))
    answer = _receive(rig, headers, body)
    assert _processing(rig) == []
    assert [path.name for path, _ in rig.quarantine.refused()]
    assert "unexpected-processing-error" in _field(
        _mdn(keys, answer.headers, answer.body), "Disposition"
    )
    assert INTEGRATION


def test_an_expired_partner_certificate_is_refused(keys: Keys, tmp_path: Path) -> None:
    """The partner's pinned certificate has expired: refused, the audit says so."""
    rig = receiver(keys, tmp_path, certificate="file:expired.pem")
    headers, body = openssl_message(keys, payload(), signer="expired")
    disposition = _refused(rig, headers, body, keys)
    assert disposition.endswith("processed/error: authentication-failed")
    (entry,) = [e for e in rig.audit.entries if e.action == "files.as2.receive"]
    assert entry.reason is not None
    assert "expired" in entry.reason


@pytest.mark.parametrize("revoked", [False, True])
def test_the_partners_crl_is_checked(keys: Keys, tmp_path: Path, revoked: bool) -> None:
    """With a CRL declared: a revoked partner certificate is refused, an unrevoked accepted."""
    crl = write_crl(keys, f"crl-{revoked}.pem", revoke=("acme.pem",) if revoked else ())
    rig = receiver(keys, tmp_path, crl=crl)
    headers, body = openssl_message(keys, payload())
    if not revoked:
        assert _receive(rig, headers, body).status == 200
        assert _processing(rig) == ["orders.csv"]
        return
    assert _refused(rig, headers, body, keys).endswith("authentication-failed")
    (entry,) = [e for e in rig.audit.entries if e.action == "files.as2.receive"]
    assert entry.reason is not None
    assert "revoked" in entry.reason


@pytest.mark.parametrize("message_id", ["", "<caf\u00e9@acme>", "<" + "x" * 300 + "@acme>"])
def test_a_missing_or_odd_message_id_is_refused(
    keys: Keys, tmp_path: Path, message_id: str
) -> None:
    """No Message-ID, one not printable ASCII, or a very long one: a problem, no MDN."""
    rig = receiver(keys, tmp_path)
    headers, body = openssl_message(keys, payload())
    headers["message-id"] = message_id
    assert "Message-ID" in _refused(rig, headers, body, keys)


def test_a_payload_whose_base64_is_broken_is_refused_not_raised(keys: Keys, tmp_path: Path) -> None:
    """A payload part declaring base64 that is not: an MDN with processed/error and an
    audit entry (it raised out of the receiver, unaudited, before)."""
    rig = receiver(keys, tmp_path, require_encrypted=False, require_signed=False)
    entity = (
        b"Content-Type: text/csv\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="orders.csv"\r\n\r\n!!! not base64 !!!'
    )
    headers, body = openssl_message(keys, entity, signed=False, encrypted=False)
    answer = _receive(rig, headers, body)
    assert answer.status == 200
    assert b"unexpected-processing-error" in answer.body
    (entry,) = [e for e in rig.audit.entries if e.action == "files.as2.receive"]
    assert entry.reason == "unexpected-processing-error: the payload is no MIME part"
    assert _processing(rig) == []


_CUT = b"HEADER-LINE\r\n\r\nSECOND-PART-OF-THE-FILE\r\n"


@pytest.mark.parametrize(
    ("entity", "data"),
    [
        (
            b"Content-Type: application/octet-stream\n"
            b'Content-Disposition: attachment; filename="f.bin"\n\n' + _CUT,
            _CUT,
        ),
        (b'Content-Disposition: attachment; filename="f.bin"\r\n\r\n\n\n' + _CUT, b"\n\n" + _CUT),
        (b"\r\n" + _CUT, _CUT),
    ],
)
def test_the_payload_headers_end_at_the_first_blank_line(
    keys: Keys, tmp_path: Path, entity: bytes, data: bytes
) -> None:
    """LF-only payload headers (or none) and a CRLF blank line in the body: processing holds
    the whole body (it was cut at the body's CRLF CRLF, under a signed "processed" MDN)."""
    rig = receiver(keys, tmp_path, files={"format": "binary", "csv_columns": []})
    headers, body = openssl_message(keys, entity)
    answer = _receive(rig, headers, body)
    assert _field(_mdn(keys, answer.headers, answer.body), "Disposition").endswith("processed")
    (stored,) = rig.quarantine.processing()
    assert stored.read_bytes() == data


def test_the_same_signed_content_under_a_new_message_id_is_refused(
    keys: Keys, tmp_path: Path
) -> None:
    """A captured message posted again under a fresh Message-ID (which the signature does not
    cover): refused, nothing added to processing (it was accepted again before)."""
    rig = receiver(keys, tmp_path)
    headers, body = openssl_message(keys, payload())
    assert _receive(rig, headers, body).status == 200
    for path in rig.quarantine.processing():  # the consumer took the first copy
        path.unlink()
    replayed = {**headers, "message-id": "<replayed-under-a-new-id@acme.example>"}
    answer = _receive(rig, replayed, body)
    disposition = _field(_mdn(keys, answer.headers, answer.body), "Disposition")
    assert disposition.endswith("processed/error: unexpected-processing-error")
    assert _processing(rig) == []
    last = [e for e in rig.audit.entries if e.action == "files.as2.receive"][-1]
    assert last.reason == "unexpected-processing-error: duplicate signed content"


def test_an_unauthenticated_message_makes_no_asynchronous_mdn(keys: Keys, tmp_path: Path) -> None:
    """A body nobody signed, asking for an MDN on the partner's origin: nothing is posted (a
    signed error MDN for any Original-Message-ID went to the partner before); the answer is
    synchronous."""
    posted: list[MdnDelivery] = []

    async def post_mdn(delivery: MdnDelivery) -> str | None:
        posted.append(delivery)
        return None

    rig = receiver(keys, tmp_path, post_mdn=post_mdn)
    headers, _ = openssl_message(keys, payload())
    headers["message-id"] = "<a-message-the-partner-really-sent@acme.example>"
    headers["receipt-delivery-option"] = "https://localhost:1/any/path"

    async def exchange() -> As2Answer:
        answer = await rig.receiver.receive(headers, b"not a CMS envelope")
        await rig.receiver.drain()
        return answer

    answer = asyncio.run(exchange())
    assert posted == []
    assert answer.deliver is None
    (entry,) = [e for e in rig.audit.entries if e.action == "files.as2.receive"]
    assert entry.reason is not None
    assert entry.reason.startswith("decryption-failed")


def test_a_verified_message_still_gets_its_asynchronous_mdn(keys: Keys, tmp_path: Path) -> None:
    """Signed by the partner and asking for an MDN on its origin: the MDN is posted."""
    posted: list[MdnDelivery] = []

    async def post_mdn(delivery: MdnDelivery) -> str | None:
        posted.append(delivery)
        return None

    rig = receiver(keys, tmp_path, post_mdn=post_mdn)
    headers, body = openssl_message(keys, payload())
    headers["receipt-delivery-option"] = "https://localhost:1/mdn"

    async def exchange() -> As2Answer:
        answer = await rig.receiver.receive(headers, body)
        await rig.receiver.drain()
        return answer

    assert asyncio.run(exchange()).status == 200
    assert [delivery.url for delivery in posted] == ["https://localhost:1/mdn"]


@pytest.mark.parametrize("value", ["\u20ac.p7m", "\udce2\udc82\udcac.p7m"])
def test_a_content_header_outside_latin_1_is_refused_and_audited(
    keys: Keys, tmp_path: Path, value: str
) -> None:
    """A Content-Type holding a character outside latin-1 (as the gateway decodes UTF-8):
    an error MDN and one audit entry (a UnicodeEncodeError escaped, unaudited, before)."""
    rig = receiver(keys, tmp_path)
    headers, body = openssl_message(keys, payload())
    headers["content-type"] = f"application/pkcs7-mime; smime-type=enveloped-data; name={value}"
    answer = _receive(rig, headers, body)
    disposition = _field(_mdn(keys, answer.headers, answer.body), "Disposition")
    assert disposition.endswith("processed/error: unexpected-processing-error")
    assert _processing(rig) == []
    (entry,) = [e for e in rig.audit.entries if e.action == "files.as2.receive"]
    assert entry.outcome.result == "failure"
    assert entry.reason == "unexpected-processing-error: the message has malformed MIME headers"


def test_an_expired_previous_certificate_opens_nothing(keys: Keys, tmp_path: Path) -> None:
    """A message encrypted to a renewed certificate that has since expired: decryption-failed
    (any previous certificate opened it, expired or not, before)."""
    loaded = manifest(keys)
    expired = load_identity(
        (keys.folder / "expired.pem").read_bytes(),
        (keys.folder / "expired.key").read_bytes(),
        "expired.pem",
    )
    audit = MemorySink()
    quarantine = Quarantine(tmp_path, loaded, INTEGRATION, audit=audit, manifest_dir=keys.folder)
    rig = ReceiverRig(
        As2Receiver(
            replace(flow(keys, loaded), previous=(expired,)),
            quarantine=quarantine,
            seen=MemorySeen(),
            audit=audit,
        ),
        quarantine,
        audit,
    )
    signed = openssl("cms", "-sign", "-binary", "-md", "sha256", "-signer", keys.file("acme.pem"),
                     "-inkey", keys.file("acme.key"), stdin=payload())  # fmt: skip
    body = openssl("cms", "-encrypt", "-binary", "-aes-256-cbc", "-outform", "DER",
                   "-recip", keys.file("expired.pem"), "-keyopt", "rsa_padding_mode:oaep",
                   stdin=signed)  # fmt: skip
    headers, _ = openssl_message(keys, payload())
    assert _refused(rig, headers, body, keys).endswith("processed/error: decryption-failed")
