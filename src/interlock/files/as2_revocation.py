"""Is a partner's certificate revoked? Its CA's CRL, its OCSP responder, or either.

For the AS2 certificate (``partners.NAME.as2``) and the certificate that signs
files (``partners.NAME.signer``, else the AS2 one) alike, the section's
``revocation`` decides (docs/files.md, "Revocation"):

* ``crl`` — the CRL named by ``crl:``, checked by OpenSSL while it verifies
  each signature (:func:`~interlock.crypto.cms.verify_detached`);
* ``ocsp`` — the responder named by ``ocsp:``, else by the certificate's
  Authority Information Access, asked after each signature verified
  (:mod:`interlock.crypto.rfc6960`: signed by the issuer or its delegated
  responder, fresh, our nonce); a ``good`` answer is kept until its
  ``nextUpdate``;
* ``either`` — OCSP first; when the responder cannot give a believable answer,
  the CRL decides (``openssl verify -crl_check``). ``revoked`` from the
  responder is final;
* ``auto`` (the default) — every method available must answer: the CRL when
  ``crl:`` is named, OCSP when ``ocsp:`` is named or the certificate names a
  responder; with neither there is nothing to ask (``interlock check`` asks
  for evidence);
* ``none`` — no check (``interlock check`` asks for evidence).

A method that cannot answer fails closed: the message is refused as
``authentication-failed``, the audit entry says why, and the MDN tells the
partner that its certificate's revocation status could not be established
(or that it is revoked): both are about the partner's own certificate.
"""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime
from typing import Final

import httpx
from cryptography import x509

from interlock.config.files import As2Partner, PartnerSigner
from interlock.crypto.cms import CmsError, Peer, check_crl, verify_detached, verify_smime
from interlock.crypto.rfc6960 import (
    OcspError,
    find_issuer,
    ocsp_request,
    ocsp_urls,
    read_response,
)
from interlock.errors import ConfigError, InterlockError
from interlock.outbound import Timeouts, read_capped, signed_documents_client

__all__ = ["Revocation", "revocation_for", "verify_partner", "verify_signed_file"]

_TIMEOUTS: Final = Timeouts.every(10.0)
_MAX_ANSWER: Final = 64 * 1024
_UNCHECKED: Final = (
    "The signer's certificate could not be checked for revocation "
    "(its OCSP responder gave no usable answer)."
)
_REVOKED: Final = "The signer's certificate is revoked."


class Revocation:
    """The OCSP side of one partner certificate's revocation check, with its cache."""

    def __init__(
        self,
        certificate: x509.Certificate,
        *,
        ocsp_url: str | None,
        issuer: x509.Certificate | None,
        fallback: Peer | None = None,
    ) -> None:
        """Ask ``ocsp_url`` about ``certificate`` (issued by ``issuer``); None: no OCSP.

        ``fallback``: the peer (with its CRL) that decides when the responder cannot.
        """
        if ocsp_url is not None and issuer is None:
            raise ValueError("OCSP needs the issuer's certificate")
        self.ocsp_url = ocsp_url
        self._certificate = certificate
        self._issuer = issuer
        self._fallback = fallback
        self._good_until: datetime | None = None
        self._lock = threading.Lock()

    def check(self, *, at: datetime) -> None:
        """Refuse (:class:`CmsError`) unless the certificate is known not revoked at ``at``."""
        if self.ocsp_url is None or self._issuer is None:
            return  # a CRL, if any, was checked with the signature
        with self._lock:
            if self._good_until is not None and at < self._good_until:
                return
        try:
            status, until = self._ask(self.ocsp_url, self._issuer, at)
        except OcspError as unusable:
            if self._fallback is not None:
                check_crl(self._fallback, at=at)
                return
            raise CmsError(
                "authentication-failed",
                f"revocation not established: {unusable.message}",
                tell=_UNCHECKED,
            ) from None
        if status == "revoked":
            raise CmsError(
                "authentication-failed",
                "the partner's certificate is revoked (OCSP)",
                tell=_REVOKED,
            )
        if status != "good":
            raise CmsError(
                "authentication-failed",
                "revocation not established: the OCSP responder does not know the certificate",
                tell=_UNCHECKED,
            )
        if until is not None:
            with self._lock:
                self._good_until = until

    def _ask(self, url: str, issuer: x509.Certificate, at: datetime) -> tuple[str, datetime | None]:
        request = ocsp_request(self._certificate, issuer)
        status, der = _post(url, request.der)
        if status != 200:  # RFC 6960 A.1: an answer is a 200
            raise OcspError(f"the OCSP responder answered HTTP {status}")
        answer = read_response(der, request, now=at)
        return answer.status, answer.next_update


def _post(url: str, der: bytes) -> tuple[int, bytes]:
    """POST an OCSP request (RFC 6960 A.1.1); the HTTP status and at most 64 KiB of answer."""
    try:
        with (
            signed_documents_client(trust=None, timeouts=_TIMEOUTS) as client,
            client.stream(
                "POST", url, content=der, headers={"Content-Type": "application/ocsp-request"}
            ) as response,
        ):
            return response.status_code, read_capped(response, _MAX_ANSWER)
    except (httpx.HTTPError, OSError):
        raise OcspError("the OCSP responder could not be reached") from None
    except InterlockError as refused:
        raise OcspError(refused.message) from None


def revocation_for(
    profile: As2Partner | PartnerSigner, peer: Peer, where: str
) -> tuple[Peer, Revocation]:
    """The peer to verify signatures with (its CRL kept only when OpenSSL checks it then)
    and the OCSP check of ``profile``; :class:`ConfigError` naming ``where`` if unusable."""
    mode = profile.revocation
    certificate = peer.certificate
    if mode in {"none", "crl"}:
        return peer, Revocation(certificate, ocsp_url=None, issuer=None)
    named = ocsp_urls(certificate)
    url = profile.ocsp or (named[0] if named else None)
    if url is None:
        if mode == "auto":
            return peer, Revocation(certificate, ocsp_url=None, issuer=None)
        raise ConfigError(
            f"{where}.ocsp: revocation {mode} needs an OCSP responder, and the partner's "
            "certificate names none"
        )
    issuer = find_issuer(certificate, _anchors(peer, where))
    if issuer is None:
        raise ConfigError(
            f"{where}.ca: OCSP needs the issuer of the partner's certificate in this file "
            "(or revocation: crl or none)"
        )
    if mode == "either":
        return dataclasses.replace(peer, crl=None), Revocation(
            certificate, ocsp_url=url, issuer=issuer, fallback=peer
        )
    return peer, Revocation(certificate, ocsp_url=url, issuer=issuer)


def verify_signed_file(
    data: bytes, signature: bytes, peer: Peer, revocation: Revocation, *, at: datetime
) -> None:
    """Verify a detached CMS signature of a file by the partner's signer, then its revocation."""
    verify_detached(data, signature, peer, at=at)
    revocation.check(at=at)


def verify_partner(
    entity: bytes, peer: Peer, revocation: Revocation, *, at: datetime
) -> tuple[bytes, str]:
    """Verify a ``multipart/signed`` entity by the partner, then that it is not revoked."""
    verified = verify_smime(entity, peer, at=at)
    revocation.check(at=at)
    return verified


def _anchors(peer: Peer, where: str) -> list[x509.Certificate]:
    if peer.anchor is None:
        return []
    try:
        return x509.load_pem_x509_certificates(peer.anchor.read_bytes())
    except (OSError, ValueError):
        raise ConfigError(f"{where}.ca: {peer.anchor} is not a readable PEM file") from None
