"""OCSP (RFC 6960): ask about one certificate, and believe only a verified, fresh answer.

:func:`ocsp_request` builds the request (cryptography's ``OCSPRequestBuilder``)
for a certificate and its issuer, with a random nonce (RFC 8954). :func:`read_response`
parses the responder's answer (``load_der_ocsp_response``) and accepts it only when:

* it is ``successful`` and carries a response for exactly our certificate
  (serial, issuer name hash and issuer key hash; RFC 6960 §4.1.1);
* it is signed by the issuer itself, or by a **delegated responder** whose
  certificate the answer carries, issued directly by the same issuer, with the
  ``id-kp-OCSPSigning`` extended key usage and valid now (RFC 6960 §4.2.2.2);
  any other signer — a key of no relation to the issuer — is refused;
* the signature is SHA-256 or stronger with RSA PKCS#1 v1.5, ECDSA, or Ed25519
  (cryptography exposes no PSS parameters of an OCSP answer, so PSS is not taken);
* ``thisUpdate`` is not in the future and ``nextUpdate``, when given, not in the
  past (a clock skew of :data:`SKEW` either way, RFC 6960 §4.2.2.1); without
  ``nextUpdate`` the answer must be at most :data:`MAX_AGE_WITHOUT_NEXT` old;
* a nonce in the answer equals the one we sent (a replayed answer is refused).
  An answer without a nonce is taken within its validity window: responders
  that pre-sign their answers (RFC 5019) do not echo nonces.

Every refusal is one :class:`OcspError` with a short reason of ours.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

from interlock.errors import InterlockError

__all__ = [
    "MAX_AGE_WITHOUT_NEXT",
    "SKEW",
    "OcspAnswer",
    "OcspError",
    "OcspRequest",
    "find_issuer",
    "ocsp_request",
    "ocsp_urls",
    "read_response",
]

SKEW: Final = timedelta(minutes=5)
MAX_AGE_WITHOUT_NEXT: Final = timedelta(hours=1)
_NONCE_BYTES: Final = 32  # RFC 8954 §2.1: 1 to 32 octets
_MAX_RESPONSE: Final = 64 * 1024
_RSA: Final = {
    SignatureAlgorithmOID.RSA_WITH_SHA256,
    SignatureAlgorithmOID.RSA_WITH_SHA384,
    SignatureAlgorithmOID.RSA_WITH_SHA512,
}
_ECDSA: Final = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA256,
    SignatureAlgorithmOID.ECDSA_WITH_SHA384,
    SignatureAlgorithmOID.ECDSA_WITH_SHA512,
}
Status = Literal["good", "revoked", "unknown"]
_STATUS: Final[dict[ocsp.OCSPCertStatus, Status]] = {
    ocsp.OCSPCertStatus.GOOD: "good",
    ocsp.OCSPCertStatus.REVOKED: "revoked",
    ocsp.OCSPCertStatus.UNKNOWN: "unknown",
}


class OcspError(InterlockError):
    """An OCSP answer was not usable: unparsable, unsigned by whom it must be, stale, foreign."""

    code = "ocsp_refused"


@dataclass(frozen=True)
class OcspRequest:
    """A request (DER) about one certificate, and what its answer must match."""

    der: bytes
    nonce: bytes
    certificate: x509.Certificate
    issuer: x509.Certificate


@dataclass(frozen=True)
class OcspAnswer:
    """The verified status of the certificate asked about, and how long it holds."""

    status: Status
    this_update: datetime
    next_update: datetime | None


def ocsp_urls(certificate: x509.Certificate) -> list[str]:
    """The OCSP responders the certificate names (Authority Information Access), in order."""
    try:
        access = certificate.extensions.get_extension_for_class(
            x509.AuthorityInformationAccess
        ).value
    except x509.ExtensionNotFound:
        return []
    return [
        description.access_location.value
        for description in access
        if description.access_method == x509.oid.AuthorityInformationAccessOID.OCSP
        and isinstance(description.access_location, x509.UniformResourceIdentifier)
    ]


def find_issuer(
    certificate: x509.Certificate, candidates: list[x509.Certificate]
) -> x509.Certificate | None:
    """The candidate that directly issued ``certificate`` (name and signature), if any."""
    for candidate in candidates:
        if candidate.subject != certificate.issuer:
            continue
        try:
            certificate.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return candidate
    return None


def ocsp_request(certificate: x509.Certificate, issuer: x509.Certificate) -> OcspRequest:
    """A request about ``certificate`` with a fresh nonce.

    The CertID hashes are SHA-1: RFC 5019 §2.1.1 requires it of lightweight
    responders, and it is an identifier here, not a signature.
    """
    nonce = secrets.token_bytes(_NONCE_BYTES)
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(certificate, issuer, hashes.SHA1())  # noqa: S303  (CertID, RFC 5019)
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .build()
    )
    return OcspRequest(request.public_bytes(serialization.Encoding.DER), nonce, certificate, issuer)


def read_response(der: bytes, request: OcspRequest, *, now: datetime) -> OcspAnswer:
    """The verified answer to ``request``; :class:`OcspError` when it cannot be believed."""
    if len(der) > _MAX_RESPONSE:
        raise OcspError("the OCSP answer is too large")
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError:
        raise OcspError("the OCSP answer cannot be parsed") from None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OcspError(f"the OCSP responder answered {response.response_status.name.lower()}")
    single = _ours(response, request)
    _check_signature(response, request.issuer, now)
    _check_nonce(response, request.nonce)
    this_update, next_update = single.this_update_utc, single.next_update_utc
    if this_update > now + SKEW:
        raise OcspError("the OCSP answer is dated in the future")
    if next_update is not None and next_update < now - SKEW:
        raise OcspError("the OCSP answer has expired (nextUpdate is past)")
    if next_update is None and this_update < now - MAX_AGE_WITHOUT_NEXT:
        raise OcspError("the OCSP answer is too old")
    return OcspAnswer(_STATUS[single.certificate_status], this_update, next_update)


def _ours(response: ocsp.OCSPResponse, request: OcspRequest) -> ocsp.OCSPSingleResponse:
    """The single response about our certificate (RFC 6960 §4.2.2.3: match the CertID)."""
    certificate, issuer = request.certificate, request.issuer
    for single in response.responses:
        algorithm = single.hash_algorithm
        if not isinstance(algorithm, hashes.SHA1 | hashes.SHA256 | hashes.SHA384 | hashes.SHA512):
            continue
        probe = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, algorithm).build()
        if (
            single.serial_number == certificate.serial_number
            and single.issuer_name_hash == probe.issuer_name_hash
            and single.issuer_key_hash == probe.issuer_key_hash
        ):
            return single
    raise OcspError("the OCSP answer is not about the partner's certificate")


def _check_signature(response: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime) -> None:
    signer = _signer(response, issuer, now)
    oid = response.signature_algorithm_oid
    digest = response.signature_hash_algorithm
    key = signer.public_key()
    try:
        if oid in _RSA and isinstance(key, rsa.RSAPublicKey) and digest is not None:
            key.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(), digest)
        elif oid in _ECDSA and isinstance(key, ec.EllipticCurvePublicKey) and digest is not None:
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(digest))
        elif oid == SignatureAlgorithmOID.ED25519 and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(response.signature, response.tbs_response_bytes)
        else:
            raise OcspError(f"the OCSP answer's signature algorithm {oid.dotted_string} is refused")
    except InvalidSignature:
        raise OcspError("the OCSP answer's signature does not verify") from None


def _signer(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime
) -> x509.Certificate:
    """The issuer, or a delegated responder it certified for OCSP signing (RFC 6960 §4.2.2.2)."""
    if _names(response, issuer):
        return issuer
    for candidate in response.certificates:
        if not _names(response, candidate):
            continue
        if find_issuer(candidate, [issuer]) is None:
            raise OcspError("the OCSP responder's certificate is not issued by the partner's CA")
        try:
            usages = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            usages = x509.ExtendedKeyUsage([])
        if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
            raise OcspError("the OCSP responder's certificate is not for OCSP signing")
        if not candidate.not_valid_before_utc - SKEW <= now <= candidate.not_valid_after_utc:
            raise OcspError("the OCSP responder's certificate is not valid now")
        return candidate
    raise OcspError("the OCSP answer is signed by neither the partner's CA nor its responder")


def _names(response: ocsp.OCSPResponse, certificate: x509.Certificate) -> bool:
    """Whether the answer's ResponderID names ``certificate`` (by name or key hash)."""
    if response.responder_name is not None:
        return response.responder_name == certificate.subject
    key_hash = x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest
    return response.responder_key_hash == key_hash


def _check_nonce(response: ocsp.OCSPResponse, nonce: bytes) -> None:
    try:
        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return
    if not secrets.compare_digest(echoed, nonce):
        raise OcspError("the OCSP answer's nonce is not ours (a replayed answer)")
