"""Limits shared by every replica: GCRA in one Redis script, one round trip per decision.

The script reads every bucket of the decision, decides with the server's own
clock (``TIME``: replicas need not agree on the time), and only when all
admit writes every new TAT with ``SET ... PX`` — so a bucket disappears by
itself once it is full again (an idle key costs nothing). It is sent by
``EVALSHA``; after a Redis restart or ``SCRIPT FLUSH`` the first call gets
``NOSCRIPT`` and is repeated once with ``EVAL``, which caches it again.

:meth:`RedisLimiter.decide` sends it through the synchronous client (from a
thread: the token endpoint, the CLI); :meth:`RedisLimiter.decide_async`
through the ``redis.asyncio`` client of the same server when one is given
(the gateway's per-request decisions, awaited on the event loop).

Cluster-safe key names: a script may touch only keys of one slot, so every
key of one decision carries the same hash tag — see :func:`bucket_key`.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Final

import redis
import redis.asyncio
from redis.exceptions import NoScriptError

from interlock.errors import InterlockError
from interlock.limits.gcra import evaluate
from interlock.limits.limiter import Decision, Limit

__all__ = ["SCRIPT", "LimitsBackendError", "RedisLimiter", "bucket_key"]

# KEYS: the buckets. ARGV[1]: "1" to consume; then T and P (µs) per bucket.
# Returns the server time (µs) and each bucket's stored TAT (-1: none) before
# the decision; the caller derives the same decision from those (gcra.evaluate).
SCRIPT: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {now}
local after = {}
local ok = true
for i = 1, #KEYS do
  local period = tonumber(ARGV[2 * i + 1])
  local raw = redis.call('GET', KEYS[i])
  local tat = -1
  if raw then tat = tonumber(raw) end
  out[i + 1] = tat
  local base = tat
  if base < now then base = now end
  local new = base + tonumber(ARGV[2 * i])
  if new - period > now then ok = false end
  after[i] = new
end
if ok and ARGV[1] == '1' then
  for i = 1, #KEYS do
    local ttl = math.ceil((after[i] - now) / 1000)
    redis.call('SET', KEYS[i], string.format('%d', after[i]), 'PX', ttl)
  end
end
return out
"""
_SHA: Final = hashlib.sha1(SCRIPT.encode(), usedforsecurity=False).hexdigest()


class LimitsBackendError(InterlockError):
    """Redis could not answer a rate-limit decision (down, timed out, refused)."""

    code = "limits_backend_error"


def bucket_key(tag: str, *parts: str) -> str:
    """``{tag}:part:part``: keys sharing ``tag`` live in one cluster slot.

    Give every key of one decision the same ``tag`` (the gateway uses the
    route's integration name). ``tag`` must not contain braces.
    """
    return "{" + tag + "}:" + ":".join(parts)


class RedisLimiter:
    """GCRA buckets in Redis, shared by every replica using the same server."""

    blocking = True

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "interlock:rl:",
        *,
        async_client: redis.asyncio.Redis | None = None,
    ) -> None:
        """Use ``client`` (and ``async_client``, the same server, for :meth:`decide_async`).

        Every key is ``prefix`` + the limit's key.
        """
        self._client = client
        self._async = async_client
        self._prefix = prefix

    def decide(self, limits: tuple[Limit, ...], *, consume: bool = True) -> Decision:
        """One ``EVALSHA`` (``EVAL`` once after ``NOSCRIPT``) for all ``limits``."""
        keys, args = self._arguments(limits, consume)
        try:
            try:
                reply = self._client.evalsha(_SHA, len(keys), *keys, *args)
            except NoScriptError:
                reply = self._client.eval(SCRIPT, len(keys), *keys, *args)
        except redis.RedisError as exc:
            raise _backend_error(exc) from exc
        return _decision(reply, limits, consume)

    async def decide_async(self, limits: tuple[Limit, ...], *, consume: bool = True) -> Decision:
        """:meth:`decide` awaited through the asyncio client (a thread without one)."""
        client = self._async
        if client is None:
            return await asyncio.to_thread(self.decide, limits, consume=consume)
        keys, args = self._arguments(limits, consume)
        try:
            try:
                reply = await client.evalsha(_SHA, len(keys), *keys, *args)
            except NoScriptError:
                reply = await client.eval(SCRIPT, len(keys), *keys, *args)
        except redis.RedisError as exc:
            raise _backend_error(exc) from exc
        return _decision(reply, limits, consume)

    def _arguments(
        self, limits: tuple[Limit, ...], consume: bool
    ) -> tuple[list[str], list[str | int]]:
        keys = [self._prefix + key for _, key in limits]
        args: list[str | int] = ["1" if consume else "0"]
        for quota, _ in limits:
            args += (quota.emission_us, quota.period_us)
        return keys, args


def _backend_error(exc: redis.RedisError) -> LimitsBackendError:
    return LimitsBackendError(f"rate-limit backend failed: {type(exc).__name__}")


def _decision(reply: Any, limits: tuple[Limit, ...], consume: bool) -> Decision:
    """The script's reply (server time, each stored TAT) as the decision it implies."""
    now, *stored = (int(value) for value in reply)
    tats = {key: tat for (_, key), tat in zip(limits, stored, strict=True) if tat >= 0}
    decision, _ = evaluate(limits, tats, now, consume=consume)
    return decision
