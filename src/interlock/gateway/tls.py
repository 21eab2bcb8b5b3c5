"""TLS contexts: the listener (Mozilla "intermediate") and upstream clients.

Upstream verification cannot be switched off: there is no parameter for it.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal, Protocol

from interlock.errors import ConfigError, did_you_mean
from interlock.gateway.openssl import restrict_groups
from interlock.logs import get_logger
from interlock.outbound import tls_context
from interlock.pki.local_ca import LOCAL_CA_NAME

__all__ = [
    "INTERMEDIATE_CIPHERS",
    "ClientAuth",
    "RevocationLists",
    "client_context",
    "load_crl",
    "server_context",
    "trust_context",
]

# Mozilla server-side TLS, "intermediate" profile (v5.7): TLS 1.2 suites; the
# TLS 1.3 suites are OpenSSL's defaults (all AEAD), which the profile accepts.
INTERMEDIATE_CIPHERS: Final = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    ]
)
_log = get_logger("interlock.gateway.tls")
_VERSIONS: Final = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


ClientAuth = Literal["none", "optional", "required"]


class RevocationLists(Protocol):
    """The deployment PKI's CRLs, kept current in the contexts given to :meth:`enforce`."""

    def enforce(self, context: ssl.SSLContext) -> None:
        """Check the server certificates ``context`` verifies against the lists, now and later."""


def server_context(
    certificate: Path | None,
    private_key: Path | None,
    min_version: str = "1.2",
    client_ca: Path | None = None,
    *,
    client_auth: ClientAuth | None = None,
    crl: Path | None = None,
) -> ssl.SSLContext:
    """The listener's context: TLS 1.2+ (OpenSSL prefers 1.3), no compression, no renegotiation.

    With ``client_ca`` the listener asks for a client certificate and verifies
    the chain, validity and EKU (``clientAuth``) of any that is presented
    against that CA: ``optional`` (the default with a CA) lets a client send
    none, and the pipeline decides whether a route needs one; ``required``
    fails the handshake without one. An invalid certificate fails the
    handshake either way. With ``crl`` the leaf's revocation is checked too;
    :func:`load_crl` adds newer lists to the running context. Without a
    ``certificate`` the caller loads one before serving (a renewing certificate).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[min_version]
    context.set_ciphers(INTERMEDIATE_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    if certificate is not None:
        context.load_cert_chain(certificate, private_key)
    if not restrict_groups(context):
        _log.warning("TLS key-exchange groups not restricted to Mozilla intermediate's")
    mode = client_auth or ("optional" if client_ca is not None else "none")
    if mode != "none":
        if client_ca is None:
            raise ConfigError(f"client_auth {mode} needs a CA to verify client certificates")
        context.verify_mode = ssl.CERT_REQUIRED if mode == "required" else ssl.CERT_OPTIONAL
        context.load_verify_locations(cafile=str(client_ca))
        if crl is not None:
            context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
            load_crl(context, crl)
    return context


def load_crl(context: ssl.SSLContext, crl: Path) -> None:
    """Add a certificate revocation list (PEM file) to a running context.

    New handshakes use it at once. OpenSSL keeps every list it was given and,
    of those from one issuer, uses the one with the latest ``thisUpdate``.
    """
    context.load_verify_locations(cafile=str(crl))


def client_context(cafile: Path | None, min_version: str = "1.2") -> ssl.SSLContext:
    """A verifying client context: the system's CA bundle, or ``cafile`` as sole trust anchor.

    The outbound rules (:func:`interlock.outbound.tls_context`) with the
    Mozilla intermediate cipher suites the listener offers too.
    """
    context = tls_context(cafile, minimum=_VERSIONS[min_version])
    context.set_ciphers(INTERMEDIATE_CIPHERS)
    return context


def trust_context(
    ca: str,
    anchors: Mapping[str, Path],
    min_version: str = "1.2",
    *,
    revocation: RevocationLists | None = None,
) -> ssl.SSLContext:
    """A verifying client context for a manifest trust anchor: ``system``, ``file:``, ``pki:``.

    With ``revocation`` a server certificate of the deployment's own PKI
    (``pki:internal``) must not be revoked: ``pki revoke`` of a compromised
    server key then stops new connections to its holder.
    """
    if ca == "system":
        return client_context(None, min_version)
    if ca.startswith("file:"):
        return client_context(Path(ca.removeprefix("file:")), min_version)
    anchor = anchors.get(ca)
    if anchor is None:
        hint = did_you_mean(ca, anchors)
        raise ConfigError(f"trust anchor {ca!r} is not known to this deployment{hint}")
    context = client_context(anchor, min_version)
    if revocation is not None and ca == f"pki:{LOCAL_CA_NAME}":
        revocation.enforce(context)
    return context
