"""DPoP (RFC 9449): the client's proofs of possession.

A :class:`DPoPKey` holds an ES256 key pair and signs one proof per HTTP
request (§4.2): header ``typ`` ``dpop+jwt``, ``alg`` ``ES256`` and the
*public* key as ``jwk``; claims ``jti`` (random), ``htm``, ``htu`` (the target
URI without query and fragment), ``iat``, with an access token also ``ath``,
and the latest server nonce for the origin (§8, §9) when one was handed out.
Signing goes through joserfc.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, NoReturn
from urllib.parse import urlsplit

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from interlock.crypto.rfc9449 import access_token_hash, normalise_htu

__all__ = ["DPoPKey", "DPoPKeyInput", "nonce_requested"]

_ALG: Final = "ES256"
_DEFAULT_PORTS: Final = {"https": 443, "http": 80}
# RFC 9449 §8.1: nonce = 1*NQCHAR; capped, as every value we keep from a server.
_NONCE: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,256}")
_MAX_ORIGINS: Final = 64

#: A joserfc ``ECKey``, a private EC JWK (dict), or a PEM-encoded EC private key (P-256).
DPoPKeyInput = ECKey | Mapping[str, Any] | bytes | str


def _origin(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return f"{scheme}://{(parts.hostname or '').lower()}:{parts.port or _DEFAULT_PORTS[scheme]}"


class DPoPKey:
    """An ES256 key pair for DPoP proofs, with the latest server nonce per origin.

    Thread-safe. The private key cannot be printed, pickled or exported.
    """

    def __init__(
        self, key: DPoPKeyInput | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        """Use ``key`` (a P-256 private key), or generate a fresh one; ``clock`` gives ``iat``."""
        self._key = ECKey.generate_key("P-256", private=True) if key is None else _load(key)
        self._public = {
            name: str(value)
            for name, value in self._key.as_dict(private=False).items()
            if name in {"kty", "crv", "x", "y"}
        }
        self._clock = clock
        self._nonces: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK (what the ``jwk`` header carries)."""
        return dict(self._public)

    @property
    def thumbprint(self) -> str:
        """The RFC 7638 thumbprint: the ``cnf.jkt`` of tokens bound to this key."""
        return self._key.thumbprint()

    def proof(self, method: str, url: str, access_token: str | None = None) -> str:
        """A fresh proof for one ``method`` request to ``url`` (with ``ath`` for a token)."""
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(18),
            "htm": method,
            "htu": normalise_htu(url),
            "iat": int(self._clock()),
        }
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        with self._lock:
            nonce = self._nonces.get(_origin(url))
        if nonce is not None:
            claims["nonce"] = nonce
        header = {"typ": "dpop+jwt", "alg": _ALG, "jwk": self._public}
        payload = json.dumps(claims, separators=(",", ":")).encode()
        return jws.serialize_compact(header, payload, self._key, algorithms=[_ALG])

    def remember_nonce(self, url: str, headers: Mapping[str, str]) -> bool:
        """Keep a ``DPoP-Nonce`` from a response by ``url``'s origin (§8.2); True if one was new."""
        nonce = headers.get("DPoP-Nonce")
        if nonce is None or not _NONCE.fullmatch(nonce):
            return False
        origin = _origin(url)
        with self._lock:
            if self._nonces.get(origin) == nonce:
                return False
            if origin not in self._nonces and len(self._nonces) >= _MAX_ORIGINS:
                self._nonces.pop(next(iter(self._nonces)))
            self._nonces[origin] = nonce
        return True

    def __repr__(self) -> str:
        return f"DPoPKey(thumbprint={self.thumbprint!r})"

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("a DPoPKey cannot be pickled")


def nonce_requested(status: int, headers: Mapping[str, str]) -> bool:
    """Whether a resource server asked for a (new) nonce: 401 ``use_dpop_nonce`` (§9)."""
    challenge = headers.get("WWW-Authenticate", "")
    return status == 401 and 'error="use_dpop_nonce"' in challenge


def _load(value: DPoPKeyInput) -> ECKey:
    try:
        key = value if isinstance(value, ECKey) else _import(value)
    except (JoseError, ValueError, TypeError):
        # Key material: the message names no part of the input.
        raise ValueError("dpop_key is not a usable EC private key") from None
    if not key.is_private or key.curve_name != "P-256":
        raise ValueError("dpop_key must be a P-256 private key (ES256)")
    return key


def _import(value: Mapping[str, Any] | bytes | str) -> ECKey:
    if isinstance(value, Mapping):
        return ECKey.import_key(dict(value))
    return ECKey.import_key(value.encode() if isinstance(value, str) else value)
