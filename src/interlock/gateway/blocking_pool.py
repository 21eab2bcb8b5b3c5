"""The threads blocking calls run on (store, Redis, the vault), bounded, with back-pressure.

Stages call the store (and Redis for signed requests' nonces, inside the
signature check) through ``asyncio.to_thread``, which uses the loop's default
executor — rate-limit decisions and Idempotency-Key records await Redis
through ``redis.asyncio`` and take no thread. asyncio's own has ``min(32, cores + 4)`` threads (6
on 2 cores) and an unbounded queue, so one slow PostgreSQL or a 2 s Redis
timeout lets requests pile up behind each other without limit. ``serve``
installs this executor instead: ``INTERLOCK_BLOCKING_THREADS`` threads and at
most ``INTERLOCK_BLOCKING_QUEUE`` calls waiting. A request that would wait
beyond that is refused at once with 503 and ``Retry-After`` (code
``overloaded``), so a balancer sends it elsewhere, instead of timing out in a
queue. Work outside a request (audit batches, renewals, the manifest
follower, readiness checks) is never refused, only queued.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar

from interlock.errors import Refusal

__all__ = ["BoundedExecutor", "handling_request"]

P = ParamSpec("P")
T = TypeVar("T")
_IN_REQUEST: ContextVar[bool] = ContextVar("interlock_in_request", default=False)


@contextmanager
def handling_request() -> Iterator[None]:
    """Mark the current task as answering a request (its blocking calls may be refused)."""
    token = _IN_REQUEST.set(True)
    try:
        yield
    finally:
        _IN_REQUEST.reset(token)


class BoundedExecutor(ThreadPoolExecutor):
    """``threads`` workers; a request's call beyond ``threads + queue`` pending is refused."""

    def __init__(self, threads: int, queue: int) -> None:
        """At most ``threads`` calls run and ``queue`` more wait, for requests."""
        super().__init__(max_workers=threads, thread_name_prefix="interlock-io")
        self.capacity = threads + queue
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        """Calls running or waiting now."""
        return self._pending

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run ``fn``; raise :class:`Refusal` ``overloaded`` for a request over capacity."""
        with self._lock:
            if self._pending >= self.capacity and _IN_REQUEST.get():
                raise Refusal(
                    "overloaded",
                    "the gateway is at capacity; retry shortly",
                    log_reason=f"blocking pool full ({self._pending} calls pending)",
                )
            self._pending += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(self._done)
        return future

    def _done(self, _: Future[Any]) -> None:
        self._release()

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1
