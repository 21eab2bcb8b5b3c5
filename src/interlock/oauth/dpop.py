"""DPoP (RFC 9449): proofs of possession that sender-constrain access tokens.

A client holding a key pair signs a fresh proof JWT for every HTTP request:
``typ`` ``dpop+jwt``, its public key in the ``jwk`` header, and claims
``jti`` (single use), ``htm`` (method), ``htu`` (URI without query and
fragment), ``iat``, and, with an access token, ``ath`` (its SHA-256). The
token endpoint binds the token to the key's RFC 7638 thumbprint (``cnf.jkt``);
the gateway then accepts the token only with a valid proof by that key.

:class:`DPoPVerifier` runs every check of RFC 9449 §4.3 and §7.1; single use
is enforced through :class:`interlock.replay.seen.SeenOnce` (store or Redis, so
a proof replayed on another replica is refused as well). Server nonces (§8,
§9) are optional: :class:`DPoPNonces` makes stateless, HMAC-authenticated
nonces that every replica sharing the key accepts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from interlock.crypto.jose import SIGNING_ALGORITHMS, json_object, verify_with_embedded_jwk
from interlock.crypto.rfc9449 import access_token_hash, normalise_htu
from interlock.errors import DPoPProofError, InvalidTokenError
from interlock.replay.seen import SeenOnce

__all__ = [
    "DPOP_ALGORITHMS",
    "DPoPNonces",
    "DPoPProof",
    "DPoPVerifier",
    "access_token_hash",
    "normalise_htu",
]

DPOP_ALGORITHMS: Final = SIGNING_ALGORITHMS
_TYP: Final = "dpop+jwt"
_MAX_JTI: Final = 256


@dataclass(frozen=True)
class DPoPProof:
    """A proof that passed every check."""

    jkt: str  # RFC 7638 thumbprint of the proof's key
    jti: str


class DPoPNonces:
    """Stateless server nonces: a time window and an HMAC of it; the last two windows are valid."""

    def __init__(
        self,
        key: bytes,
        window: timedelta = timedelta(minutes=5),
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Authenticate nonces with ``key`` (shared by every replica)."""
        self._key = key
        self._window = window.total_seconds()
        self._clock = clock

    def current(self) -> str:
        """The nonce to hand out now (in ``DPoP-Nonce``)."""
        return self._make(int(self._clock() // self._window))

    def valid(self, nonce: object) -> bool:
        """Whether ``nonce`` is one of ours from this window or the previous one."""
        if not isinstance(nonce, str) or len(nonce) > 64:
            return False
        window = int(self._clock() // self._window)
        return any(hmac.compare_digest(nonce, self._make(w)) for w in (window, window - 1))

    def _make(self, window: int) -> str:
        counter = struct.pack(">Q", window)
        tag = hmac.new(self._key, b"dpop-nonce" + counter, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(counter + tag).rstrip(b"=").decode()


class DPoPVerifier:
    """Checks DPoP proofs (RFC 9449 §4.3)."""

    def __init__(
        self,
        seen: SeenOnce,
        *,
        nonces: DPoPNonces | None = None,
        max_age: timedelta = timedelta(seconds=60),
        future_skew: timedelta = timedelta(seconds=5),
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Refuse replays through ``seen``; require ``nonces`` when given."""
        self._seen = seen
        self.nonces = nonces
        self._max_age = max_age.total_seconds()
        self._skew = future_skew.total_seconds()
        self._clock = clock

    @property
    def algorithms(self) -> frozenset[str]:
        """The proof algorithms accepted (``dpop_signing_alg_values_supported``)."""
        return DPOP_ALGORITHMS

    def check(
        self, proof: str, method: str, uri: str, access_token: str | None = None
    ) -> DPoPProof:
        """The proof's key thumbprint and jti, or :class:`DPoPProofError`."""
        try:
            _, payload, jkt = verify_with_embedded_jwk(proof, _TYP, DPOP_ALGORITHMS)
            claims = json_object(payload)
        except InvalidTokenError as exc:
            raise DPoPProofError(exc.reason) from None
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= _MAX_JTI:
            raise DPoPProofError("missing or oversized jti")
        if claims.get("htm") != method:
            raise DPoPProofError("htm does not match the request method")
        htu = claims.get("htu")
        if not isinstance(htu, str):
            raise DPoPProofError("htu does not match the request URI")
        try:
            same = normalise_htu(htu) == normalise_htu(uri)
        except ValueError:  # urlsplit: a port out of range, a broken IPv6 host (was a 500)
            raise DPoPProofError("htu is not a valid URI") from None
        if not same:
            raise DPoPProofError("htu does not match the request URI")
        iat = claims.get("iat")
        now = self._clock()
        if not isinstance(iat, int) or not now - self._max_age <= iat <= now + self._skew:
            raise DPoPProofError("iat outside the acceptance window")
        if access_token is not None:
            ath = claims.get("ath")
            expected = access_token_hash(access_token)
            if not isinstance(ath, str) or not hmac.compare_digest(ath, expected):
                raise DPoPProofError("ath does not match the access token")
        if self.nonces is not None and not self.nonces.valid(claims.get("nonce")):
            raise DPoPProofError("a fresh server nonce is required", "use_dpop_nonce")
        until = datetime.fromtimestamp(iat + self._max_age + self._skew, UTC)
        # jti is unique per key (§11.1): scope the replay key by the thumbprint.
        if not self._seen.first_use("dpop", f"{jkt}:{jti}", until):
            raise DPoPProofError("proof jti used before (replay)")
        return DPoPProof(jkt, jti)
