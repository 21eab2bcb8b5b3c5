"""Part (b): access-token verifications per second, in process, against PyJWT.

``n`` real tokens are issued by :class:`TokenIssuer` (ES256, the deployment's
signing key). The gateway's verifier, configured as ``interlock serve``
configures it (our issuer, the manifest, the revocation mirror), checks them:

* uncached: ``cache_size=0``; every call checks the signature, ``typ``,
  ``iss``, ``aud``, ``exp``/``iat``, ``sub == client_id``, ``jti``, revocation,
  the client in the manifest and its granted scopes;
* cached: the gateway's own path, ``verify_cached(token)`` and ``verify(token)``
  on a miss, over tokens verified once before (a miss happens when the
  revocation mirror is older than a second; misses are counted).

PyJWT does ``jwt.decode_complete`` on the same tokens with the same public key
(a ``cryptography`` key object built once), requiring
exp/iat/iss/aud/sub/jti and checking ``iss``, ``aud`` and ``alg``, then
compares the header's ``typ`` with ``at+jwt``: the same JWT checks, without
the revocation, manifest and scope look-ups only ours does.

The cached path is compared with PyJWT behind the same cache, never with an
uncached PyJWT (a dictionary look-up against an ECDSA verification is not the
same work): a dict keyed by SHA-256 of the token, as ours is, holding the
decoded claims; a hit re-checks ``exp`` against the clock, a miss decodes and
stores. Ours additionally asks the revocation mirror on every hit.

Timing: ``time.perf_counter`` around whole passes over the tokens (enough
passes for about ``seconds`` per repeat), single-threaded, the garbage
collector as default; the best (fastest) of ``repeat`` repeats is reported,
the median beside it.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import jwt
from jwt.types import Options

from interlock.config.manifest import Manifest
from interlock.errors import InvalidTokenError
from interlock.oauth.revoked import RevokedTokens
from interlock.oauth.signing_keys import SigningKeys
from interlock.oauth.tokens import AccessTokenVerifier, TokenIssuer
from interlock.store import Deployment

__all__ = ["Timing", "measure_verification"]

ISSUER: Final = "https://gateway.bench.test"
_REQUIRED: Final[Options] = {"require": ["exp", "iat", "iss", "aud", "sub", "jti"]}


@dataclass(frozen=True)
class Timing:
    """Per-operation cost of one verifier: best and median over the repeats."""

    name: str
    best_us: float
    median_us: float
    misses: int = 0  # cached path only: calls that fell through to ``verify``

    @property
    def per_second(self) -> float:
        """Verifications per second at the best repeat."""
        return 1e6 / self.best_us


def measure_verification(
    deployment: Deployment,
    manifest: Manifest,
    client: str,
    *,
    n: int,
    repeat: int,
    seconds: float,
) -> list[Timing]:
    """Issue ``n`` tokens, check every verifier accepts them (and refuses a forgery), time them."""
    keys = SigningKeys(deployment.engine, deployment.keyring, "ES256")
    keys.ensure()
    issuer = TokenIssuer(keys, ISSUER)
    scopes = frozenset({"orders.read"})
    tokens = [issuer.issue(client, scopes, ISSUER).access_token for _ in range(n)]
    (jwk,) = keys.jwks()["keys"]
    public_key = jwt.PyJWK(jwk).key  # imported once, outside the timed loops

    def verifier(cache_size: int) -> AccessTokenVerifier:
        return AccessTokenVerifier(
            keys, ISSUER, manifest, revoked=RevokedTokens(deployment.engine), cache_size=cache_size
        )

    uncached, cached = verifier(0), verifier(10 * n)

    def ours(batch: Sequence[str]) -> int:
        verify = uncached.verify
        for token in batch:
            verify(token)
        return 0

    def ours_cached(batch: Sequence[str]) -> int:
        verify_cached, verify = cached.verify_cached, cached.verify
        misses = 0
        for token in batch:
            if verify_cached(token) is None:
                misses += 1
                verify(token)
        return misses

    def pyjwt(batch: Sequence[str]) -> int:
        decode = jwt.decode_complete
        for token in batch:
            decoded = decode(
                token,
                public_key,
                algorithms=["ES256"],
                audience=ISSUER,
                issuer=ISSUER,
                options=_REQUIRED,
            )
            if decoded["header"].get("typ") != "at+jwt":
                raise jwt.InvalidTokenError("typ is not at+jwt")
        return 0

    peer_cache: dict[bytes, dict[str, Any]] = {}

    def pyjwt_cached(batch: Sequence[str]) -> int:
        get, clock, sha256 = peer_cache.get, time.time, hashlib.sha256
        misses = 0
        for token in batch:
            digest = sha256(token.encode()).digest()
            claims = get(digest)
            if claims is None or clock() >= claims["exp"]:
                misses += 1
                decoded = jwt.decode_complete(
                    token,
                    public_key,
                    algorithms=["ES256"],
                    audience=ISSUER,
                    issuer=ISSUER,
                    options=_REQUIRED,
                )
                if decoded["header"].get("typ") != "at+jwt":
                    raise jwt.InvalidTokenError("typ is not at+jwt")
                peer_cache[digest] = decoded["payload"]
        return misses

    _check_agree(tokens, uncached, cached, public_key)
    for token in tokens:
        cached.verify(token)  # fill the caches: the timed loops measure hits
    pyjwt_cached(tokens)
    return [
        _time("PyJWT jwt.decode_complete", pyjwt, tokens, repeat, seconds),
        _time("interlock verify (uncached)", ours, tokens, repeat, seconds),
        _time("PyJWT behind a dict cache (hit)", pyjwt_cached, tokens, repeat, seconds),
        _time("interlock verify_cached (hit)", ours_cached, tokens, repeat, seconds),
    ]


def _check_agree(
    tokens: Sequence[str], uncached: AccessTokenVerifier, cached: AccessTokenVerifier, key: Any
) -> None:
    """Every verifier accepts the tokens, with the claims issued, and refuses a changed signature."""
    for token in tokens[:10]:
        principal = uncached.verify(token)
        claims = jwt.decode(
            token, key, algorithms=["ES256"], audience=ISSUER, issuer=ISSUER, options=_REQUIRED
        )
        if principal.client != claims["sub"] or "orders.read" not in principal.scopes:
            raise SystemExit(f"verifiers disagree: {principal} against {claims}")
    signing_input, signature = tokens[0].rsplit(".", 1)
    forged = f"{signing_input}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    for name, refuses in (
        ("interlock", lambda: uncached.verify(forged)),
        ("interlock cached", lambda: cached.verify_cached(forged) or cached.verify(forged)),
        ("PyJWT", lambda: jwt.decode(forged, key, algorithms=["ES256"], audience=ISSUER)),
    ):
        try:
            refuses()
        except (InvalidTokenError, jwt.InvalidTokenError):
            continue
        raise SystemExit(f"{name} accepted a token with a changed signature")


def _time(
    name: str,
    run: Callable[[Sequence[str]], int],
    tokens: Sequence[str],
    repeat: int,
    seconds: float,
) -> Timing:
    started = time.perf_counter()
    misses = run(tokens)  # warm-up pass, and the calibration of passes per repeat
    first = time.perf_counter() - started
    passes = max(1, round(seconds / first))
    per_op: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(passes):
            misses += run(tokens)
        per_op.append((time.perf_counter() - started) / (passes * len(tokens)) * 1e6)
    return Timing(name, min(per_op), statistics.median(per_op), misses)
