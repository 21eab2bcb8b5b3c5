"""The RFC 8705 certificate thumbprint, shared by the token endpoint and the gateway."""

from __future__ import annotations

import base64
import hashlib

__all__ = ["certificate_thumbprint"]


def certificate_thumbprint(der: bytes) -> str:
    """``x5t#S256``: base64url of the SHA-256 of the DER certificate (RFC 8705 §3.1)."""
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
