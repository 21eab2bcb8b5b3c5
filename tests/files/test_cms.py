"""The CMS layer's own rules: multipart/signed cut by its boundary, key handles kept in."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from interlock.crypto.cms import CmsError, Identity, Peer, _multipart_signed, sign, verify_smime
from tests.files.as2_support import Keys, openssl, payload


def _identity(keys: Keys) -> Identity:
    key = load_pem_private_key((keys.folder / "acme.key").read_bytes(), None)
    certificate = x509.load_pem_x509_certificate((keys.folder / "acme.pem").read_bytes())
    return Identity(certificate, key)  # type: ignore[arg-type]


def _peer(keys: Keys) -> Peer:
    certificate = x509.load_pem_x509_certificate((keys.folder / "acme.pem").read_bytes())
    return Peer(certificate, keys.folder / "acme.pem", Path(keys.file("ca.pem")))


@pytest.mark.processes
def test_a_signed_entity_verifies_and_returns_the_signed_bytes(keys: Keys) -> None:
    """What ``sign`` makes, ``verify_smime`` (OpenSSL) accepts, giving back the part signed."""
    entity = payload(data=b"a,b\r\n1,2\r\n\x00binary\n")
    signed = sign(entity, _identity(keys), "rsa-pss-sha256")
    content, digest = verify_smime(signed, _peer(keys), at=datetime.now(UTC))
    assert (content, digest) == (entity, "sha256")
    openssl("cms", "-verify", "-CAfile", keys.file("ca.pem"), stdin=sign(
        payload(), _identity(keys), "rsa-pkcs1-sha512"))  # fmt: skip


@pytest.mark.processes
@pytest.mark.parametrize(
    "change",
    [
        # a third part slipped in before the closing delimiter
        lambda body, b: body.replace(
            b"--" + b + b"--", b"--" + b + b"\r\nX: y\r\n\r\nz\r\n--" + b + b"--"
        ),
        # content swapped for other bytes under the same signature
        lambda body, b: body.replace(b"1,ada@example.com", b"1,eve@example.com"),
        # no closing delimiter
        lambda body, b: body.replace(b"--" + b + b"--", b""),
    ],
)
def test_a_tampered_multipart_signed_is_refused(keys: Keys, change: object) -> None:
    """Extra parts, changed content, or a missing end: refused, never partly trusted."""
    signed = sign(payload(), _identity(keys), "rsa-pss-sha256")
    boundary = signed.split(b'boundary="', 1)[1].split(b'"', 1)[0]
    tampered = change(signed, boundary)  # type: ignore[operator]
    with pytest.raises(CmsError):
        verify_smime(tampered, _peer(keys), at=datetime.now(UTC))


def test_a_boundary_lookalike_is_not_a_delimiter() -> None:
    """``--BOUNDARYX`` inside the content is content; CRLF before a delimiter is the delimiter's."""
    content = b"Content-Type: text/plain\r\n\r\nx\r\n--bX\r\ny\r\n"
    entity = (
        b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; boundary="b"'
        b"\r\n\r\npreamble\r\n--b\r\n" + content + b"\r\n--b\r\n"
        b"Content-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n"
        b"\r\nAAEC\r\n--b--\r\n"
    )
    assert _multipart_signed(entity) == (content, b"\x00\x01\x02")


def test_an_identity_is_not_pickled_or_shown(keys: Keys) -> None:
    """The key handle refuses pickling and stays out of ``repr``."""
    identity = _identity(keys)
    with pytest.raises(TypeError):
        pickle.dumps(identity)
    assert "key=" not in repr(identity)
