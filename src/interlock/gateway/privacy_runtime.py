"""The data-subject request service across manifests, and its due work in the background.

The service is built for one manifest (it asks that manifest's systems), so
each gateway a reload assembles gets its own :class:`~interlock.gateway.
privacy_api.PrivacyApi` from :meth:`PrivacyRuntime.api`, out of the parts the
gateway keeps for the whole process (:class:`PrivacyParts`); the newest is the
one whose due work (asking systems, retries with back-off, closing) runs every
few seconds in :meth:`PrivacyRuntime.run`, off the event loop. Replicas may
all run it: the service leases each request before working on it.

The factory comes from the face that starts the gateway: the real service
(:class:`interlock.privacy.requests.PrivacyRequests`) reaches the client SDK's
request signer through its webhook connector, which no module of the gateway
may import (the SDK layer contract).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sqlalchemy import Engine

from interlock.audit.sink import AuditSink
from interlock.config.manifest import Manifest
from interlock.crypto import Keyring
from interlock.gateway.privacy_api import PrivacyApi
from interlock.gateway.privacy_service import PrivacyRequestsApi, SubjectTracer
from interlock.logs import get_logger
from interlock.privacy.lineage import LineageIndex
from interlock.secrets.vault import Vault

__all__ = ["DUE_EVERY", "PrivacyFactory", "PrivacyParts", "PrivacyRuntime"]

_log = get_logger("interlock.gateway.privacy")
#: Seconds between two runs of the due work: a step waits at most this long to start.
DUE_EVERY: Final = 5.0


@dataclass(frozen=True)
class PrivacyParts:
    """What the gateway keeps for the whole process and the privacy service uses."""

    engine: Engine  # the store
    keyring: Keyring
    audit: AuditSink
    audit_engine: Engine  # the audit log's database: receipts' and traces' inclusion proofs
    lineage: LineageIndex  # its hasher is the lineage key's
    vault: Vault  # webhook credentials and SQL connectors' database URLs
    anchors: Mapping[str, Path]  # pki:NAME -> CA file, for the systems' trust anchors


#: The service and the tracer of one manifest, from the process's parts.
PrivacyFactory = Callable[[PrivacyParts, Manifest], tuple[PrivacyRequestsApi, SubjectTracer]]


class PrivacyRuntime:
    """Builds the privacy API per manifest and runs the newest service's due work."""

    def __init__(self, factory: PrivacyFactory, *, every: float = DUE_EVERY) -> None:
        """Build services with ``factory``; run their due work every ``every`` seconds."""
        if every <= 0:
            raise ValueError("every is a positive number of seconds")
        self._factory = factory
        self.every = every
        self.current: PrivacyRequestsApi | None = None

    def api(self, parts: PrivacyParts, manifest: Manifest) -> PrivacyApi:
        """The API of ``manifest``'s service, which from now on runs the due work."""
        requests, trace = self._factory(parts, manifest)
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
