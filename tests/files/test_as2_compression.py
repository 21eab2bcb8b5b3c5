"""AS2 compression (RFC 5402) against Bouncy Castle, an independent S/MIME implementation.

Debian's OpenSSL is built without zlib, so ``openssl cms -compress`` cannot be
the peer here; Bouncy Castle's bcmail (``make bouncycastle`` installs Debian's
``libbcmail-java``) writes and reads the compressed data
(``tests/files/peers/As2Compression.java``), OpenSSL signs, encrypts, decrypts and
verifies around it, in both directions and in both orders RFC 5402 allows.
Without Java or the jars the peer tests skip, or fail under
``INTERLOCK_REQUIRE_SERVICES=1``. The refusals (decompression bombs, a second
layer, another algorithm) need no peer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms  # type: ignore[import-untyped]

from interlock.audit import MemorySink
from interlock.crypto.cms import CmsError
from interlock.crypto.rfc3274 import compressed_entity, expand
from interlock.files.as2_mime import mic, split, transfer_decoded
from interlock.files.as2_receive import As2Answer
from interlock.files.as2_send import send
from interlock.testing.services import require_env
from interlock.testing.tls import https_server
from tests.files.as2_support import (
    ORDERS,
    Keys,
    OpenSslPartner,
    ReceiverRig,
    flow,
    manifest,
    openssl,
    openssl_message,
    payload,
    receiver,
    run_peer,
)

pytestmark = pytest.mark.processes

PEER = Path(__file__).with_name("peers") / "As2Compression.java"
JARS = tuple(
    Path("/usr/share/java") / f"{name}.jar"
    for name in ("bcprov", "bcpkix", "bcutil", "bcmail", "javax.mail", "javax.activation")
)


@pytest.fixture(scope="module")
def java() -> str:
    """Java and Debian's Bouncy Castle jars; skip (or fail under CI) without them."""
    found = shutil.which("java")
    missing = [str(jar) for jar in JARS if not jar.exists()]
    if found is None or missing:
        reason = (
            "Bouncy Castle's S/MIME is not installed (make bouncycastle, or apt-get install "
            f"default-jre-headless libbcmail-java): {'java' if found is None else missing[0]}"
        )
        if require_env():
            pytest.fail(f"required service missing: {reason}")
        pytest.skip(reason)
    return found


def bouncycastle(java: str, mode: str, entity: bytes) -> bytes:
    """``compress`` or ``expand`` a MIME entity with Bouncy Castle; its output, or fail."""
    command = [java, "-cp", ":".join(map(str, JARS)), str(PEER), mode]
    return run_peer(command, entity, what=f"Bouncy Castle {mode}", timeout=120, shown=800)


def _receive(rig: ReceiverRig, headers: dict[str, str], body: bytes) -> As2Answer:
    return asyncio.run(rig.receiver.receive(headers, body))


def _received(rig: ReceiverRig) -> dict[str, str]:
    (entry,) = [e for e in rig.audit.entries if e.action == "files.as2.receive"]
    assert entry.outcome.result == "success", entry.reason
    return {key: str(value) for key, value in entry.details.items()}


def _processing(rig: ReceiverRig) -> list[bytes]:
    return [path.read_bytes() for path in rig.quarantine.processing()]


def test_bouncy_castle_compressed_then_openssl_signed_is_accepted(
    keys: Keys, tmp_path: Path, java: str
) -> None:
    """Compressed before signing: accepted; the MIC covers what was signed (the compressed part)."""
    rig = receiver(keys, tmp_path)
    compressed = bouncycastle(java, "compress", payload())
    assert b"smime-type=compressed-data" in compressed
    headers, body = openssl_message(keys, compressed)
    answer = _receive(rig, headers, body)
    assert answer.status == 200, answer
    assert _processing(rig) == [ORDERS]
    details = _received(rig)
    assert details["compression"] == "before-signing"
    assert details["mic"] == mic(compressed, "sha256")
    assert details["sha256"] == hashlib.sha256(ORDERS).hexdigest()


def test_openssl_signed_then_bouncy_castle_compressed_is_accepted(
    keys: Keys, tmp_path: Path, java: str
) -> None:
    """Compressed after signing: accepted; the MIC covers the payload part that was signed."""
    rig = receiver(keys, tmp_path)
    entity = payload()
    signed = openssl(
        "cms", "-sign", "-binary", "-md", "sha256", "-signer", keys.file("acme.pem"),
        "-inkey", keys.file("acme.key"), stdin=entity,
    )  # fmt: skip
    headers, body = openssl_message(
        keys, bouncycastle(java, "compress", signed), signed=False, encrypted=True
    )
    answer = _receive(rig, headers, body)
    assert answer.status == 200, answer
    assert _processing(rig) == [ORDERS]
    details = _received(rig)
    assert details["compression"] == "after-signing"
    assert details["mic"] == mic(entity, "sha256")


@pytest.fixture
def partner(keys: Keys) -> Iterator[type[OpenSslPartner]]:
    """ACME's server (OpenSSL), reset for the test and after it."""
    OpenSslPartner.keys, OpenSslPartner.mic_override = keys, None
    OpenSslPartner.received.clear()
    try:
        yield OpenSslPartner
    finally:
        OpenSslPartner.after_decrypt.clear()


def _send(keys: Keys, port: int, compress: str) -> MemorySink:
    loaded = manifest(
        keys,
        partner={"url": f"https://localhost:{port}/as2", "compress": compress},
        direction="outbound",
    )
    audit = MemorySink()
    sent = asyncio.run(send(flow(keys, loaded), "orders.csv", ORDERS, audit=audit))
    assert sent.mdn is not None  # OpenSSL's signed MDN, our MIC in it, checked by send
    return audit


def test_compressed_before_signing_is_opened_by_bouncy_castle(
    keys: Keys, java: str, partner: type[OpenSslPartner]
) -> None:
    """Interlock compresses then signs: OpenSSL verifies, Bouncy Castle expands the payload."""
    with https_server(partner, keys.tls) as server:
        audit = _send(keys, server.server_address[1], "before-signing")
    (signed_content,) = partner.received
    assert b"smime-type=compressed-data" in signed_content
    entity = bouncycastle(java, "expand", signed_content)
    assert entity.endswith(b"\r\n\r\n" + ORDERS)
    assert b'filename="orders.csv"' in entity
    (entry,) = audit.entries
    assert entry.details["compression"] == "before-signing"
    assert entry.details["mdn"] == "mdn processed"


def test_compressed_after_signing_is_opened_by_bouncy_castle(
    keys: Keys, java: str, partner: type[OpenSslPartner]
) -> None:
    """Interlock signs then compresses: Bouncy Castle expands, then OpenSSL verifies."""
    partner.after_decrypt.append(lambda data: bouncycastle(java, "expand", data))
    with https_server(partner, keys.tls) as server:
        audit = _send(keys, server.server_address[1], "after-signing")
    (content,) = partner.received
    assert content.endswith(b"\r\n\r\n" + ORDERS)
    (entry,) = audit.entries
    assert entry.details["compression"] == "after-signing"
    assert entry.details["mdn"] == "mdn processed"


# The refusals: no peer needed.


def _compressed_data(data: bytes, *, algorithm: str = "1.2.840.113549.1.9.16.3.8") -> bytes:
    """A ContentInfo of CompressedData holding ``data`` as is, naming ``algorithm``."""
    return asn1_cms.ContentInfo(  # type: ignore[no-any-return]
        {
            "content_type": "compressed_data",
            "content": {
                "version": "v0",
                "compression_algorithm": {"algorithm": algorithm},
                "encap_content_info": {"content_type": "data", "content": data},
            },
        }
    ).dump()


def _part(der: bytes, *, encoding: str = "binary") -> bytes:
    body = base64.encodebytes(der) if encoding == "base64" else der
    return (
        b'Content-Type: application/pkcs7-mime; smime-type="compressed-data"\r\n'
        b"Content-Transfer-Encoding: " + encoding.encode() + b"\r\n\r\n" + body
    )


def test_compressed_entity_round_trip_and_its_headers() -> None:
    entity = payload()
    part = compressed_entity(entity)
    head, body = split(part)
    assert head.get_param("smime-type") == "compressed-data"
    assert expand(transfer_decoded(head, body), limit=len(entity)) == entity
    der = base64.b64decode(body)
    assert expand(der, limit=len(entity)) == entity
    assert expand(transfer_decoded(*split(_part(der))), limit=len(entity)) == entity
    with pytest.raises(CmsError, match="expands beyond"):
        expand(der, limit=len(entity) - 1)


@pytest.mark.parametrize(
    ("der", "reason"),
    [
        (_compressed_data(zlib.compress(b"\0" * (64 << 20))), "expands beyond"),
        (_compressed_data(zlib.compress(b"x" * 100)[:-6]), "truncated"),
        (_compressed_data(zlib.compress(b"x") + b"tail"), "bytes follow"),
        (_compressed_data(b"not zlib at all"), "not a valid zlib stream"),
        (_compressed_data(zlib.compress(b"x"), algorithm="1.2.3.4"), "not zlib"),
        (b"\x30\x03\x02\x01\x00", "cannot be read"),
    ],
)
def test_a_bad_compressed_part_is_refused(der: bytes, reason: str) -> None:
    """A bomb stops at the limit; a broken stream or another algorithm is refused, not guessed."""
    with pytest.raises(CmsError, match=reason) as refused:
        expand(der, limit=1 << 20)
    assert refused.value.disposition == "decompression-failed"


def test_a_bomb_in_a_message_is_refused_with_decompression_failed(
    keys: Keys, tmp_path: Path
) -> None:
    """64 MiB of zeros in 64 KiB, to an integration of max_size 1 MiB: processed/error."""
    rig = receiver(
        keys, tmp_path, files={"max_size": 1 << 20}, require_encrypted=False, require_signed=False
    )
    bomb = _compressed_data(zlib.compress(b"\0" * (64 << 20), 9))
    assert len(bomb) < 128 * 1024
    headers, body = openssl_message(keys, _part(bomb), signed=False, encrypted=False)
    answer = _receive(rig, headers, body)
    assert answer.status == 200
    assert b"decompression-failed" in answer.body
    (entry,) = rig.audit.entries
    assert entry.outcome.result == "failure"
    assert entry.reason is not None
    assert entry.reason.startswith("decompression-failed: ")
    assert _processing(rig) == []


def test_compression_twice_is_refused(keys: Keys, tmp_path: Path) -> None:
    """One layer at most: compressed data inside compressed data is not opened further."""
    rig = receiver(keys, tmp_path, require_encrypted=False, require_signed=False)
    twice = compressed_entity(compressed_entity(payload()))
    headers, body = openssl_message(keys, twice, signed=False, encrypted=False)
    answer = _receive(rig, headers, body)
    assert b"decompression-failed" in answer.body
    (entry,) = rig.audit.entries
    assert entry.reason == "decompression-failed: the message is compressed more than once"


def test_compressed_but_not_encrypted_is_refused_when_encryption_is_required(
    keys: Keys, tmp_path: Path
) -> None:
    """Compression is not encryption: an application/pkcs7-mime that only compresses fails."""
    rig = receiver(keys, tmp_path)
    headers, body = openssl_message(
        keys, compressed_entity(payload()), signed=False, encrypted=False
    )
    answer = _receive(rig, headers, body)
    assert b"insufficient-message-security" in answer.body
    assert _processing(rig) == []


def test_an_unsigned_compressed_message_has_the_mic_of_its_payload(
    keys: Keys, tmp_path: Path
) -> None:
    """Unsigned: the MIC is over the content before compression (RFC 5402)."""
    rig = receiver(keys, tmp_path, require_encrypted=False, require_signed=False)
    entity = payload()
    headers, body = openssl_message(keys, compressed_entity(entity), signed=False, encrypted=False)
    answer = _receive(rig, headers, body)
    assert answer.status == 200
    details = _received(rig)
    assert details["compression"] == "unsigned"
    assert details["mic"] == mic(entity, "sha256")
