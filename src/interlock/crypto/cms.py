"""CMS (RFC 5652) for AS2 and signed files: sign, envelope, open and verify, modern algorithms only.

Who does what (cryptography 50, OpenSSL 3 — nothing here is hand-rolled):

* **sign** — cryptography's ``PKCS7SignatureBuilder``: detached, S/MIME,
  SHA-256/384/512 with RSA-PSS or RSA PKCS#1 v1.5.
* **envelope** and **open** — cryptography's ``PKCS7EnvelopeBuilder`` and
  ``pkcs7_decrypt_der`` when the partner uses AES-CBC with RSA PKCS#1 v1.5 key
  transport: that is all cryptography 50 offers. RSA-OAEP key transport and
  AES-GCM (AuthEnvelopedData, RFC 5083/5084) go through ``openssl cms``.
* **verify** — ``openssl cms -verify``: cryptography 50 cannot verify CMS
  signatures. The signer must be the partner's pinned certificate
  (``-certfile`` with ``-nointern``: certificates carried in the message are
  not used), chained to the partner's trust anchor (``-CAfile``; the system
  store for ``ca: system``), valid at the time given (``-attime``), and, when
  the partner publishes a CRL, not revoked (``-crl_check``).
* **algorithms** — before anything is opened or verified, asn1crypto reads
  which algorithms the message names, and only the allow-list passes: a 3DES
  envelope or a SHA-1 signature is refused, not opened.

OpenSSL runs with an argument list (never a shell); the message goes in on
stdin, the result comes back on stdout; our private key reaches it through a
pipe (``/dev/fd/N``), never a file. Every failure is a :class:`CmsError`
carrying an AS2 disposition modifier (RFC 4130 §7.4.3) and a short reason for
the audit log; OpenSSL's own messages stay out of it.
"""

from __future__ import annotations

import base64
import email
import email.policy
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

from asn1crypto import cms as asn1_cms  # type: ignore[import-untyped]
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7

from interlock.config.files import As2Encryption, As2Signing
from interlock.errors import InterlockError

__all__ = [
    "CmsError",
    "Disposition",
    "Identity",
    "Peer",
    "check_certificate",
    "check_crl",
    "check_key_size",
    "decrypt",
    "encrypt",
    "load_identity",
    "sign",
    "verify_detached",
    "verify_smime",
]

Disposition = Literal[
    "decryption-failed",
    "authentication-failed",
    "integrity-check-failed",
    "insufficient-message-security",
    "unexpected-processing-error",
    "decompression-failed",
]
"""The ``processed/error`` modifiers an MDN reports (RFC 4130 §7.4.3; RFC 5402's last)."""

_OPENSSL: Final = "openssl"
_TIMEOUT: Final = 60.0
_MAX_MESSAGE: Final = 512 * 1024 * 1024
_DIGESTS: Final = {"sha256", "sha384", "sha512"}
_SIGNATURES: Final = {"rsassa_pkcs1v15", "rsassa_pss"}
_CONTENT: Final = {"aes128_cbc", "aes256_cbc", "aes128_gcm", "aes256_gcm"}
_HASHES: Final[dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_OPENSSL_CIPHERS: Final = {
    "aes256-gcm": "-aes-256-gcm",
    "aes128-gcm": "-aes-128-gcm",
    "aes256-cbc": "-aes-256-cbc",
    "aes128-cbc": "-aes-128-cbc",
}
MIN_RSA_BITS: Final = 2048


class CmsError(InterlockError):
    """A CMS message was refused; ``disposition`` is what an MDN reports, ``reason`` the audit."""

    code = "cms_refused"

    def __init__(self, disposition: Disposition, reason: str, *, tell: str | None = None) -> None:
        """``reason`` is ours (never OpenSSL's text, never the content).

        ``tell``: a sentence the partner may read in the MDN (its own
        certificate's revocation status, say); None: the MDN names the class only.
        """
        super().__init__(reason)
        self.disposition: Disposition = disposition
        self.reason = reason
        self.tell = tell


@dataclass(frozen=True)
class Identity:
    """Interlock's key and certificate for one partner; the key never shows in ``repr``."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey = field(repr=False)

    def __reduce__(self) -> str | tuple[object, ...]:
        """Never pickled: a key handle does not leave the process by accident."""
        raise TypeError("an Identity holds a private key and cannot be pickled")


@dataclass(frozen=True)
class Peer:
    """A partner's pinned certificate (a PEM file), its trust anchor and its CRL, if any."""

    certificate: x509.Certificate
    certificate_file: Path
    anchor: Path | None  # None: the system's trust store
    crl: Path | None = None


def load_identity(certificate_pem: bytes, key_pem: bytes, where: str) -> Identity:
    """Our certificate and its RSA key (PEM, unencrypted); ValueError naming ``where``."""
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise ValueError(f"{where}: our_certificate or our_key cannot be read") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.public_key() != certificate.public_key():
        raise ValueError(f"{where}.our_key: not the RSA key of our_certificate")
    try:
        check_key_size(certificate, f"{where}.our_certificate")
    except CmsError as error:
        raise ValueError(error.reason) from None
    return Identity(certificate, key)


def check_key_size(certificate: x509.Certificate, where: str) -> None:
    """RSA of at least 2048 bits: anything else is refused (``where`` names the setting)."""
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise CmsError("authentication-failed", f"{where}: an RSA certificate is required")
    if key.key_size < MIN_RSA_BITS:
        raise CmsError(
            "authentication-failed",
            f"{where}: RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} are required",
        )


def sign(entity: bytes, identity: Identity, signing: As2Signing) -> bytes:
    """``entity`` (a MIME part, headers and body) as ``multipart/signed``, detached (RFC 5751).

    The result is a MIME entity (its own ``Content-Type`` header first); the
    signed part is ``entity`` byte for byte, so its MIC is a hash of
    ``entity``. cryptography makes the signature (DER); the two parts are
    framed here because its S/MIME output rewrites bare LFs of the content as
    CRLF, which breaks binary payloads (tests/files/test_cms.py).
    """
    name = signing.rsplit("-", 1)[1]
    digest = _HASHES[name]()
    rsa_padding: padding.PSS | padding.PKCS1v15 = (
        padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.DIGEST_LENGTH)
        if signing.startswith("rsa-pss")
        else padding.PKCS1v15()
    )
    builder = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(entity)
        .add_signer(identity.certificate, identity.key, digest, rsa_padding=rsa_padding)
    )
    options = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]
    signature = builder.sign(serialization.Encoding.DER, options)
    return _multipart_signed_entity(entity, signature, f"sha-{name.removeprefix('sha')}")


def _multipart_signed_entity(content: bytes, signature: bytes, micalg: str) -> bytes:
    """RFC 1847/5751 framing: the content as is, then the base64 signature, CRLF delimiters."""
    boundary = f"----=_Signed_{secrets.token_hex(16)}"
    while boundary.encode() in content:  # 128 random bits; checked all the same
        boundary = f"----=_Signed_{secrets.token_hex(16)}"
    encoded = base64.encodebytes(signature).replace(b"\n", b"\r\n")
    head = (
        "Content-Type: multipart/signed; "
        f'protocol="application/pkcs7-signature"; micalg={micalg}; boundary="{boundary}"\r\n\r\n'
        f"This is an S/MIME signed message\r\n\r\n--{boundary}\r\n"
    )
    signature_part = (
        f"\r\n--{boundary}\r\n"
        'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        'Content-Disposition: attachment; filename="smime.p7s"\r\n\r\n'
    )
    return (
        head.encode("ascii")
        + content
        + signature_part.encode("ascii")
        + encoded
        + f"\r\n--{boundary}--\r\n".encode("ascii")
    )


def encrypt(
    entity: bytes,
    peer: Peer,
    encryption: As2Encryption,
    key_transport: Literal["rsa-oaep", "rsa-pkcs1"],
) -> bytes:
    """``entity`` enveloped for the partner (DER): cryptography where it can, else OpenSSL."""
    if key_transport == "rsa-pkcs1" and encryption.endswith("-cbc"):
        cipher = algorithms.AES256 if encryption.startswith("aes256") else algorithms.AES128
        builder = (
            pkcs7.PKCS7EnvelopeBuilder()
            .set_data(entity)
            .add_recipient(peer.certificate)
            .set_content_encryption_algorithm(cipher)
        )
        return builder.encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    arguments = ["cms", "-encrypt", "-binary", "-outform", "DER", _OPENSSL_CIPHERS[encryption]]
    arguments += ["-recip", str(peer.certificate_file)]
    if key_transport == "rsa-oaep":
        arguments += ["-keyopt", "rsa_padding_mode:oaep"]
    return _openssl(arguments, entity, failure="unexpected-processing-error")


def decrypt(
    der: bytes, identity: Identity, key_transport: Literal["rsa-oaep", "rsa-pkcs1"]
) -> bytes:
    """Open an envelope addressed to ``identity``; only allowed algorithms are even tried.

    RSA-OAEP key transport always passes; RSA PKCS#1 v1.5 only when the
    partner's profile says ``rsa-pkcs1``; the content cipher must be AES-CBC
    or AES-GCM.
    """
    content, transports = _envelope_algorithms(der)
    allowed = {"rsaes_oaep"} | ({"rsaes_pkcs1v15"} if key_transport == "rsa-pkcs1" else set())
    if content not in _CONTENT:
        raise CmsError("decryption-failed", f"weak or unknown content encryption {content}")
    if not transports or not set(transports) <= allowed:
        raise CmsError("decryption-failed", f"key transport {'/'.join(transports)} not allowed")
    if transports == ["rsaes_pkcs1v15"] and content.endswith("_cbc"):
        try:
            return pkcs7.pkcs7_decrypt_der(der, identity.certificate, identity.key, [])
        except ValueError:
            raise CmsError("decryption-failed", "the envelope cannot be opened") from None
    key_pem = identity.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with _CertificateFile(identity.certificate) as certificate:
        arguments = ["cms", "-decrypt", "-binary", "-inform", "DER", "-recip", certificate]
        return _openssl(arguments, der, failure="decryption-failed", key=key_pem)


def verify_smime(entity: bytes, peer: Peer, *, at: datetime) -> tuple[bytes, str]:
    """Verify a ``multipart/signed`` entity by ``peer``; the signed part's bytes and digest name.

    The signed part is cut out by its boundary (RFC 2046 §5.1.1: the line
    break before a delimiter belongs to the delimiter; a bare LF, as OpenSSL
    writes in binary mode, is taken too) and verified byte for byte, never
    canonicalised: AS2 content is binary. The digest name (``sha256``...) is
    what the signer used, for the MIC.
    """
    content, signature = _multipart_signed(entity)
    return content, verify_detached(content, signature, peer, at=at)


def verify_detached(data: bytes, signature: bytes, peer: Peer, *, at: datetime) -> str:
    """Verify a detached CMS signature (DER or PEM) of ``data`` by ``peer``; its digest name."""
    der = _der(signature)
    digest = _check_signature_algorithms(der)
    trust = _trust_store(peer)
    with _Temporary(der) as signature_file, _Temporary(trust or b"", ".pem") as trust_file:
        arguments = ["cms", "-verify", "-binary", "-inform", "DER", "-in", signature_file]
        arguments += ["-content", "/dev/stdin", "-out", "/dev/null"]
        arguments += ["-certfile", str(peer.certificate_file), "-nointern"]
        arguments += ["-attime", str(int(at.timestamp())), "-purpose", "smimesign"]
        if peer.anchor is not None:
            arguments += ["-no-CApath", "-no-CAstore"]
        if trust is not None:
            arguments += ["-CAfile", trust_file]
        if peer.crl is not None:
            arguments += ["-crl_check"]
        _openssl(arguments, data, failure="authentication-failed")
    return digest


def check_crl(peer: Peer, *, at: datetime) -> None:
    """The partner's certificate checked against its CA's CRL alone (``openssl verify -crl_check``).

    The same OpenSSL check :func:`verify_detached` makes with a CRL, for when
    revocation is decided apart from a signature (OCSP first, the CRL if the
    responder cannot answer). ``peer.crl`` must be set.
    """
    if peer.crl is None:
        raise CmsError("authentication-failed", "no CRL of the partner's CA is declared")
    check_certificate(peer, at=at)


def check_certificate(peer: Peer, *, at: datetime) -> None:
    """The partner's pinned certificate checked alone by ``openssl verify``, before a send.

    The checks :func:`verify_detached` makes of a signer, without a
    signature: chained to the partner's anchor (the system store only when
    there is none), valid at ``at``, the ``smimesign`` purpose, and not
    revoked by its CA's CRL when one is declared (``-crl_check``).
    """
    trust = _trust_store(peer)
    with _Temporary(trust or b"", ".pem") as trust_file:
        arguments = ["verify", "-purpose", "smimesign", "-attime", str(int(at.timestamp()))]
        if peer.crl is not None:
            arguments += ["-crl_check"]
        if trust is not None:
            arguments += ["-CAfile", trust_file]
        if peer.anchor is not None:
            arguments += ["-no-CApath", "-no-CAstore"]
        _openssl([*arguments, str(peer.certificate_file)], b"", failure="authentication-failed")


def _trust_store(peer: Peer) -> bytes | None:
    """The anchor's certificates and the partner CA's CRL (PEM) in one file for ``-CAfile``.

    ``openssl cms`` has no ``-CRLfile``; a CA file may carry CRLs. None: the
    system store alone (no anchor file, no CRL).
    """
    parts: list[bytes] = []
    try:
        if peer.anchor is not None:
            parts.append(peer.anchor.read_bytes())
        if peer.crl is not None:
            raw = peer.crl.read_bytes()
            crl = (
                x509.load_pem_x509_crl(raw)
                if raw.lstrip().startswith(b"-----BEGIN")
                else x509.load_der_x509_crl(raw)
            )
            parts.append(crl.public_bytes(serialization.Encoding.PEM))
    except (OSError, ValueError):
        raise CmsError(
            "authentication-failed", "the partner's anchor or CRL is unreadable"
        ) from None
    return b"\n".join(parts) if parts else None


def _der(signature: bytes) -> bytes:
    if signature.lstrip().startswith(b"-----BEGIN"):
        try:
            return _pem_body(signature)
        except ValueError:
            raise CmsError("integrity-check-failed", "the signature is not PEM") from None
    return signature


def _pem_body(pem: bytes) -> bytes:
    import base64

    lines = [line.strip() for line in pem.strip().splitlines()]
    if not lines or not lines[0].startswith(b"-----BEGIN") or not lines[-1].startswith(b"-----END"):
        raise ValueError("not PEM")
    return base64.b64decode(b"".join(lines[1:-1]), validate=True)


def _multipart_signed(entity: bytes) -> tuple[bytes, bytes]:
    """The signed part (bytes as sent) and the decoded signature of a ``multipart/signed``."""
    message = email.message_from_bytes(entity, policy=email.policy.compat32)
    boundary = message.get_boundary()
    if message.get_content_type() != "multipart/signed" or not boundary:
        raise CmsError("integrity-check-failed", "the message is not multipart/signed")
    # A delimiter line is exactly "--BOUNDARY" (or "--BOUNDARY--"), then blanks, then EOL.
    marker = re.escape(boundary.encode("ascii", "replace"))
    delimiter = re.compile(rb"(?:\r?\n|^)--" + marker + rb"(--)?[ \t]*(?:\r?\n|\Z)")
    marks = list(delimiter.finditer(entity))
    if len(marks) != 3 or marks[2].group(1) is None:
        raise CmsError("integrity-check-failed", "multipart/signed needs exactly two parts")
    content = entity[marks[0].end() : marks[1].start()]
    signature_part = entity[marks[1].end() : marks[2].start()]
    part = email.message_from_bytes(signature_part, policy=email.policy.compat32)
    if part.get_content_type() not in {
        "application/pkcs7-signature",
        "application/x-pkcs7-signature",
    }:
        raise CmsError("integrity-check-failed", "the second part is no CMS signature")
    decoded = part.get_payload(decode=True)
    if not isinstance(decoded, bytes) or not decoded:
        raise CmsError("integrity-check-failed", "the signature part is empty")
    return content, decoded


def _check_signature_algorithms(der: bytes) -> str:
    """The one digest every signer used; refused unless SHA-2 with RSA (PKCS#1 v1.5 or PSS)."""
    try:
        info = asn1_cms.ContentInfo.load(der)
        if info["content_type"].native != "signed_data":
            raise CmsError("integrity-check-failed", "the signature is no CMS SignedData")
        found = [
            (signer["digest_algorithm"]["algorithm"].native, signer["signature_algorithm"])
            for signer in info["content"]["signer_infos"]
        ]
        signatures = [algorithm.signature_algo for _, algorithm in found]
        digests = {str(digest) for digest, _ in found}
    except (ValueError, TypeError, KeyError):
        raise CmsError("integrity-check-failed", "the signature cannot be parsed") from None
    if not found:
        raise CmsError("authentication-failed", "the signature has no signer")
    weak = (digests - _DIGESTS) or {str(s) for s in signatures if s not in _SIGNATURES}
    if weak:
        raise CmsError("integrity-check-failed", f"weak signature algorithm {min(weak)}")
    if len(digests) != 1:
        raise CmsError("integrity-check-failed", "the signers use different digests")
    return digests.pop()


def _envelope_algorithms(der: bytes) -> tuple[str, list[str]]:
    """The content cipher and each recipient's key transport an envelope names."""
    try:
        info = asn1_cms.ContentInfo.load(der)
        kind = info["content_type"].native
        if kind not in {"enveloped_data", "authenticated_enveloped_data"}:
            raise CmsError("decryption-failed", "the message is no CMS envelope")
        content = info["content"]
        encrypted = content[
            "auth_encrypted_content_info"
            if kind == "authenticated_enveloped_data"
            else "encrypted_content_info"
        ]
        cipher = str(encrypted["content_encryption_algorithm"]["algorithm"].native)
        transports = [
            str(recipient.chosen["key_encryption_algorithm"]["algorithm"].native)
            if recipient.name == "ktri"
            else recipient.name
            for recipient in content["recipient_infos"]
        ]
    except (ValueError, TypeError, KeyError):
        raise CmsError("decryption-failed", "the envelope cannot be parsed") from None
    return cipher, transports


class _Temporary:
    """A private temporary file (0600) holding ``data``, removed on exit."""

    def __init__(self, data: bytes, suffix: str = ".der") -> None:
        import tempfile

        descriptor, name = tempfile.mkstemp(suffix=suffix)
        self.path = name
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, *_: object) -> None:
        Path(self.path).unlink(missing_ok=True)


class _CertificateFile(_Temporary):
    """A certificate as a temporary PEM file (public: no secret is written)."""

    def __init__(self, certificate: x509.Certificate) -> None:
        super().__init__(certificate.public_bytes(serialization.Encoding.PEM), ".pem")


def _openssl(
    arguments: Sequence[str],
    stdin: bytes,
    *,
    failure: Disposition,
    key: bytes | None = None,
) -> bytes:
    """Run ``openssl ARGUMENTS`` with ``stdin``; its stdout, or :class:`CmsError` (``failure``).

    ``key`` (a PEM private key) is handed over through a pipe as ``-inkey /dev/fd/N``.
    """
    if len(stdin) > _MAX_MESSAGE:
        raise CmsError("unexpected-processing-error", "the message is too large")
    program = shutil.which(_OPENSSL)
    if program is None:
        raise CmsError("unexpected-processing-error", "openssl is not installed")
    command = [program, *arguments]
    descriptors: tuple[int, ...] = ()
    reader = -1
    if key is not None:
        reader, writer = os.pipe()
        try:
            os.write(writer, key)  # a PEM key is far below the pipe's 64 KiB buffer
        finally:
            os.close(writer)
        descriptors = (reader,)
        command += ["-inkey", f"/dev/fd/{reader}"]
    try:
        result = subprocess.run(  # noqa: S603  (fixed program, argument list, no shell)
            command,
            input=stdin,
            capture_output=True,
            check=False,
            timeout=_TIMEOUT,
            pass_fds=descriptors,
        )
    except (OSError, subprocess.TimeoutExpired):
        raise CmsError("unexpected-processing-error", "openssl could not be run") from None
    finally:
        if reader >= 0:
            os.close(reader)
    if result.returncode != 0:
        raise CmsError(failure, _explain(failure, result.stderr))
    return result.stdout


def _explain(failure: Disposition, stderr: bytes) -> str:
    """A short reason of ours for what OpenSSL refused (its text never leaves this function)."""
    text = stderr.decode("ascii", "replace").lower()
    known = (
        ("certificate has expired", "the partner's certificate has expired"),
        ("certificate is not yet valid", "the partner's certificate is not yet valid"),
        ("certificate revoked", "the partner's certificate is revoked"),
        ("unable to get certificate crl", "no CRL of the partner's CA is at hand"),
        ("crl has expired", "the partner CA's CRL has expired"),
        ("unable to get local issuer", "the signer does not chain to the partner's trust anchor"),
        ("signer certificate not found", "the message is not signed by the partner's certificate"),
        ("digest failure", "the content does not match its signature"),
        ("signature failure", "the signature does not verify"),
        ("no recipient", "the envelope is not addressed to our certificate"),
        ("decrypt error", "the envelope cannot be opened"),
    )
    for marker, reason in known:
        if marker in text:
            return reason
    return {
        "authentication-failed": "the signature does not verify",
        "decryption-failed": "the envelope cannot be opened",
        "integrity-check-failed": "the message is not intact",
        "insufficient-message-security": "the message is not protected as required",
        "unexpected-processing-error": "the message could not be processed",
    }[failure]
