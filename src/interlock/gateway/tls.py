"""TLS contexts: the listener (Mozilla "intermediate") and upstream clients.

Upstream verification cannot be switched off: there is no parameter for it.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from interlock.errors import ConfigError

__all__ = ["INTERMEDIATE_CIPHERS", "client_context", "server_context"]

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
_VERSIONS: Final = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def server_context(
    certificate: Path,
    private_key: Path,
    min_version: str = "1.2",
    client_ca: Path | None = None,
) -> ssl.SSLContext:
    """The listener's context: TLS 1.2+ (OpenSSL prefers 1.3), no compression, no renegotiation.

    With ``client_ca`` the listener asks for a client certificate and verifies
    any that is presented against that CA (a client may still send none; the
    pipeline decides whether a route needs one).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[min_version]
    context.set_ciphers(INTERMEDIATE_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.load_cert_chain(certificate, private_key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cafile=str(client_ca))
    return context


def client_context(cafile: Path | None, min_version: str = "1.2") -> ssl.SSLContext:
    """A verifying client context: the system's CA bundle, or ``cafile`` as sole trust anchor."""
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    context.minimum_version = _VERSIONS[min_version]
    context.set_ciphers(INTERMEDIATE_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    # create_default_context already sets both; stated so a reader need not know.
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def trust_context(ca: str, anchors: Mapping[str, Path], min_version: str = "1.2") -> ssl.SSLContext:
    """A verifying client context for a manifest trust anchor: ``system``, ``file:``, ``pki:``."""
    if ca == "system":
        return client_context(None, min_version)
    if ca.startswith("file:"):
        return client_context(Path(ca.removeprefix("file:")), min_version)
    anchor = anchors.get(ca)
    if anchor is None:
        raise ConfigError(f"trust anchor {ca!r} is not known to this deployment")
    return client_context(anchor, min_version)
