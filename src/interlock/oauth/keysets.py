"""Verification key sets: ours from the store, a trusted issuer's over HTTPS or from a file.

A :class:`KeySet` caches the keys it loads and looks again (a) when the cache
is older than ``max_age`` and (b) when a token names an unknown ``kid`` — but
then at most once per ``min_refresh`` seconds, so a flood of tokens with made-up
``kid`` values costs one fetch per interval, not one per token (RFC 8725 §3.10,
OpenID Connect Core §10.1.1 key rollover).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import httpx

from interlock.crypto.jose import PublicKey, import_public_jwk
from interlock.errors import InvalidTokenError
from interlock.logs import get_logger
from interlock.outbound import ResponseTooLargeError, Timeouts, outbound_client, read_capped

__all__ = ["KeySet", "file_jwks", "https_jwks", "parse_jwks"]

MAX_JWKS_BYTES: Final = 64 * 1024
MAX_KEYS: Final = 100
#: An identity provider answers in well under a second; a hung one must not
#: hold a key refresh (and the tokens waiting on it) for longer than this.
JWKS_TIMEOUTS: Final = Timeouts.every(5.0)
_REFUSED: Final = "the token is invalid"
_log = get_logger("interlock.oauth.keysets")

Keys = Mapping[str, tuple[str | None, PublicKey]]
"""kid -> (the JWK's ``alg`` if it names one, the public key)."""


class KeySet:
    """Keys by ``kid``, loaded by ``load`` and cached; refreshed on age or unknown ``kid``."""

    def __init__(
        self,
        load: Callable[[], Keys],
        *,
        max_age: float = 300.0,
        min_refresh: float = 5.0,
        name: str = "keys",
    ) -> None:
        """Cache ``load``'s keys ``max_age`` s; reload at most every ``min_refresh`` s."""
        self._load = load
        self._max_age = max_age
        self._min_refresh = min_refresh
        self._name = name
        self._keys: Keys = {}
        self._loaded = float("-inf")  # last successful load
        self._attempted = float("-inf")  # last attempt, successful or not
        self._lock = threading.Lock()

    def current(self) -> Keys:
        """The cached keys, reloaded first when older than ``max_age`` (or never loaded)."""
        if time.monotonic() - self._loaded < self._max_age:
            return self._keys
        return self._refresh()

    def cached(self) -> Keys:
        """The cached keys, without I/O."""
        return self._keys

    def after_unknown_kid(self) -> Keys:
        """Reload because a token named an unknown ``kid`` (rate-limited)."""
        return self._refresh()

    def _refresh(self) -> Keys:
        with self._lock:
            now = time.monotonic()
            if now - self._attempted < self._min_refresh:
                return self._keys  # looked very recently (maybe another thread just did)
            self._attempted = now
            try:
                self._keys = dict(self._load())
            except (
                InvalidTokenError,
                ResponseTooLargeError,
                OSError,
                httpx.HTTPError,
                ValueError,
            ) as exc:
                # Keep serving the keys we had; try again after the rate-limit interval.
                _log.warning("key set not refreshed", keys=self._name, error=str(exc))
                return self._keys
            self._loaded = now
            return self._keys


def parse_jwks(document: bytes) -> dict[str, tuple[str | None, PublicKey]]:
    """The signing keys of a JWKS document (RFC 7517 §5); keys without ``kid`` are skipped."""
    if len(document) > MAX_JWKS_BYTES:
        raise ValueError(f"JWKS larger than {MAX_JWKS_BYTES} bytes")
    try:
        parsed: Any = json.loads(document)
    except RecursionError:
        raise ValueError("JWKS nested too deeply") from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("keys"), list):
        raise ValueError("not a JWKS document: no 'keys' array")  # noqa: TRY004  (bad input)
    keys: dict[str, tuple[str | None, PublicKey]] = {}
    kids: set[str] = set()
    for entry in parsed["keys"][:MAX_KEYS]:
        kid = entry.get("kid") if isinstance(entry, dict) else None
        if isinstance(kid, str) and kid:
            # Two keys under one kid: which one signed is ambiguous, and "the last one
            # wins" lets whoever adds a key shadow another. Refuse the set (Wycheproof
            # DuplicateKid); the key set keeps the keys it had.
            if kid in kids:
                raise ValueError(f"JWKS names kid {kid[:64]!r} more than once")
            kids.add(kid)
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        alg = entry.get("alg")
        if not isinstance(kid, str) or not kid:
            continue
        try:
            key = import_public_jwk(entry)
        except InvalidTokenError:
            continue  # an unusable or private entry is never a verification key
        keys[kid] = (alg if isinstance(alg, str) else None, key)
    return keys


def https_jwks(
    url: str, context: ssl.SSLContext, timeouts: Timeouts = JWKS_TIMEOUTS
) -> Callable[[], Keys]:
    """A loader fetching ``url`` over TLS verified with ``context``; redirects are not followed.

    The client comes from :func:`interlock.outbound.outbound_client`; the
    answer is read up to :data:`MAX_JWKS_BYTES` and no further.
    """

    def load() -> Keys:
        with (
            outbound_client(trust=context, timeouts=timeouts) as client,
            client.stream("GET", url, headers={"Accept": "application/jwk-set+json"}) as response,
        ):
            if response.status_code != 200:
                raise ValueError(f"JWKS endpoint answered {response.status_code}")
            body = read_capped(response, MAX_JWKS_BYTES)
        return parse_jwks(body)

    return load


def file_jwks(path: Path) -> Callable[[], Keys]:
    """A loader reading a JWKS file (re-read on every refresh)."""

    def load() -> Keys:
        with path.open("rb") as handle:
            return parse_jwks(handle.read(MAX_JWKS_BYTES + 1))

    return load
