"""The data-subject request service across manifests, and its due work in the background.

The service is built for one manifest (it asks that manifest's systems), so
each gateway a reload assembles gets its own :class:`~interlock.gateway.
privacy_api.PrivacyApi` from :meth:`PrivacyRuntime.api`; the newest is the
one whose due work (asking systems, retries with back-off, closing) runs every
few seconds in :meth:`PrivacyRuntime.run`, off the event loop. Replicas may
all run it: the service claims each step in the store before doing it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from interlock.config.manifest import Manifest
from interlock.gateway.privacy_api import PrivacyApi
from interlock.gateway.privacy_service import PrivacyRequestsApi, SubjectTracer
from interlock.logs import get_logger

__all__ = ["DUE_EVERY", "PrivacyFactory", "PrivacyRuntime"]

_log = get_logger("interlock.gateway.privacy")
#: Seconds between two runs of the due work: a step waits at most this long to start.
DUE_EVERY: Final = 5.0

#: The service and the tracer of one manifest.
PrivacyFactory = Callable[[Manifest], tuple[PrivacyRequestsApi, SubjectTracer]]


class PrivacyRuntime:
    """Builds the privacy API per manifest and runs the newest service's due work."""

    def __init__(self, factory: PrivacyFactory, *, every: float = DUE_EVERY) -> None:
        """Build services with ``factory``; run their due work every ``every`` seconds."""
        if every <= 0:
            raise ValueError("every is a positive number of seconds")
        self._factory = factory
        self.every = every
        self.current: PrivacyRequestsApi | None = None

    def api(self, manifest: Manifest) -> PrivacyApi:
        """The API of ``manifest``'s service, which from now on runs the due work."""
        requests, trace = self._factory(manifest)
        self.current = requests
        return PrivacyApi(requests, trace)

    async def run_once(self) -> int:
        """Run the current service's due work once, in a worker thread; the steps taken.

        A failure is logged by its type only (a connector's message may quote an
        answer with personal data) and retried at the next run: never raised.
        """
        service = self.current
        if service is None:
            return 0
        try:
            return await asyncio.to_thread(service.run_due)
        except Exception as exc:  # noqa: BLE001  (the loop must outlive any one failure)
            _log.error("privacy due work failed; retried at the next run", error=type(exc).__name__)
            return 0

    async def run(self) -> None:
        """Run the due work every :attr:`every` seconds until cancelled."""
        while True:
            await self.run_once()
            await asyncio.sleep(self.every)
