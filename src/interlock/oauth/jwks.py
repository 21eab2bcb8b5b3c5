"""The published key set, cached briefly and refreshed off the event loop."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Final

from interlock.oauth.signing_keys import SigningKeys

__all__ = ["JwksPublisher"]

CACHE_SECONDS: Final = 30.0


class JwksPublisher:
    """Serves ``/.well-known/jwks.json`` from :class:`SigningKeys`.

    Each refresh also runs the rotation schedule (``SigningKeys.ensure``), so a
    running gateway rotates and retires keys without an operator.
    """

    def __init__(self, keys: SigningKeys, cache_seconds: float = CACHE_SECONDS) -> None:
        """Publish ``keys``' public set."""
        self._keys = keys
        self._ttl = cache_seconds
        self._body = b""
        self._fetched = float("-inf")
        self._lock = asyncio.Lock()

    async def body(self) -> bytes:
        """The JWKS document as JSON bytes, at most ``cache_seconds`` old."""
        if time.monotonic() - self._fetched < self._ttl:
            return self._body
        async with self._lock:
            if time.monotonic() - self._fetched >= self._ttl:
                self._body = await asyncio.to_thread(self._refresh)
                self._fetched = time.monotonic()
        return self._body

    def _refresh(self) -> bytes:
        self._keys.ensure()
        return json.dumps(self._keys.jwks()).encode()
