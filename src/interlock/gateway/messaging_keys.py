"""``GET /v1/messaging/{integration}/jwks.json``: a messaging integration's public keys.

Also those of an event-streaming integration that seals its events
(``encrypt: payload``, :func:`~interlock.messaging.keys.keyed_spec`).

What partners and consumers outside the deployment verify and encrypt with
(RFC 7517; each key names its party in ``interlock_party``): the producer's
signing keys and the consumers' encryption keys, pending, in use and
retiring. Public, like ``/.well-known/jwks.json``; cached for a minute.
Each refresh also runs the keys' schedule (:meth:`MessagingKeys.ensure`), so
a running gateway rotates and retires message keys without an operator.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from interlock.config.manifest import Manifest
from interlock.errors import Refusal
from interlock.messaging.keys import MessagingKeys, keyed_spec

__all__ = ["MESSAGING_PREFIX", "MessagingKeysEndpoint", "label"]

MESSAGING_PREFIX: Final = "/v1/messaging"
_SUFFIX: Final = "/jwks.json"
CACHE_SECONDS: Final = 30.0


def label(path: str) -> str:
    """The metrics and audit label of a request under the prefix: a template, never a name."""
    return MESSAGING_PREFIX + "/{integration}" + _SUFFIX


@dataclass
class MessagingKeysEndpoint:
    """Serves each messaging integration's key set from :class:`MessagingKeys`."""

    keys: MessagingKeys
    manifest: Manifest
    cache_seconds: float = CACHE_SECONDS
    _bodies: dict[str, tuple[float, bytes]] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def __call__(self, request: web.BaseRequest) -> web.Response:
        """The key set of the integration the path names; 404 for anything else."""
        name = request.path.removeprefix(MESSAGING_PREFIX + "/").removesuffix(_SUFFIX)
        flow = self.manifest.integrations.get(name)
        if (
            not request.path.endswith(_SUFFIX)
            or "/" in name
            or flow is None
            or keyed_spec(flow) is None
        ):
            raise Refusal("not-found", "no messaging integration has keys at this path")
        return web.Response(
            body=await self._body(name),
            content_type="application/jwk-set+json",
            headers={"Cache-Control": "public, max-age=60"},
        )

    async def _body(self, name: str) -> bytes:
        cached = self._bodies.get(name)
        if cached is not None and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]
        async with self._lock:
            body = await asyncio.to_thread(self._refresh, name)
            self._bodies[name] = (time.monotonic(), body)
        return body

    def _refresh(self, name: str) -> bytes:
        self.keys.ensure(self.manifest)
        return json.dumps(self.keys.jwks(name)).encode()
