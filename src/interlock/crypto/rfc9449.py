"""The two computed DPoP claims (RFC 9449 §4.2), shared by the SDK and the server.

Kept free of heavy imports: the SDK builds proofs with these, the server
checks them with the same code.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Final
from urllib.parse import urlsplit

__all__ = ["access_token_hash", "normalise_htu"]

_DEFAULT_PORTS: Final = {"https": 443, "http": 80}


def access_token_hash(token: str) -> str:
    """``ath``: base64url of the SHA-256 of the access token (RFC 9449 §4.2)."""
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def normalise_htu(uri: str) -> str:
    """``uri`` without query and fragment, scheme and host lower-case, default port dropped."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path or '/'}"
