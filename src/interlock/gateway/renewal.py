"""Certificates the gateway uses itself, renewed ahead of expiry without a restart.

The listener's own certificate (``--cert auto``) and the client certificate it
presents to upstreams that require mutual TLS (``client_cert: pki:auto``) are
issued by the deployment's PKI. When a third of a certificate's lifetime is
left, a new one is issued and loaded into every TLS context that uses it: new
connections present the new certificate, connections already open keep
working, nothing is dropped. The key is written to a 0600 file only for the
moment ``load_cert_chain`` reads it.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import threading
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sqlalchemy.exc import SQLAlchemyError

from interlock.crypto.keyfile import write_private_file
from interlock.errors import InterlockError
from interlock.gateway.metrics import GatewayMetrics
from interlock.logs import get_logger
from interlock.pki.authority import Issued

__all__ = ["RenewingCertificate", "keep_renewed"]

RENEWAL_CHECK_SECONDS: Final = 60.0

_log = get_logger("interlock.gateway.renewal")


class RenewingCertificate:
    """One certificate (and key) kept loaded, and renewed, in a set of TLS contexts."""

    def __init__(
        self,
        name: str,
        issue: Callable[[], Issued],
        work: Path,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``issue`` makes a fresh certificate; key files pass through ``work``."""
        self.name = name
        self._issue = issue
        self._work = work
        self._now = now
        self._contexts: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()
        self._lock = threading.Lock()
        self.current: Issued | None = None
        self._issued_at: datetime | None = None

    def attach(self, context: ssl.SSLContext) -> None:
        """Load the certificate into ``context`` now and on every renewal."""
        with self._lock:
            current = self.current if self.current is not None else self._renew()
            self._load(context, current)
            self._contexts.add(context)

    def renew_if_due(self) -> bool:
        """Renew when a third of the lifetime (or less) is left; True when renewed."""
        with self._lock:
            if self.current is None or self._issued_at is None:
                return False
            left = self.current.not_after - self._now()
            if left > (self.current.not_after - self._issued_at) / 3:
                return False
            self._renew()
            return True

    def days_left(self) -> float | None:
        """Days until the current certificate expires (``None`` before the first)."""
        if self.current is None:
            return None
        return (self.current.not_after - self._now()).total_seconds() / 86400

    def _renew(self) -> Issued:
        issued = self._issue()
        for context in list(self._contexts):
            self._load(context, issued)
        self.current, self._issued_at = issued, self._now()
        _log.info(
            "certificate issued",
            certificate=self.name,
            serial=issued.serial,
            not_after=issued.not_after.isoformat(),
        )
        return issued

    def _load(self, context: ssl.SSLContext, issued: Issued) -> None:
        with tempfile.TemporaryDirectory(dir=self._work) as folder:
            cert, key = Path(folder) / "cert.pem", Path(folder) / "key.pem"
            cert.write_bytes(issued.certificate_pem)
            write_private_file(key, issued.private_key_pem)
            context.load_cert_chain(cert, key)


async def keep_renewed(
    certificates: list[RenewingCertificate],
    trusted: Callable[[], dict[str, datetime]],
    metrics: GatewayMetrics,
    renewed: Callable[[RenewingCertificate], None] | None = None,
) -> None:
    """Every minute: renew what is due; publish when these and the ``trusted`` CAs expire.

    ``renewed`` is told about each renewal (the audit trail).
    """
    while True:
        try:
            for certificate in certificates:
                if await asyncio.to_thread(certificate.renew_if_due) and renewed is not None:
                    renewed(certificate)
                if certificate.current is not None:
                    expiry = certificate.current.not_after.timestamp()
                    metrics.certificate_expiry.labels(certificate.name).set(expiry)
            for name, not_after in (await asyncio.to_thread(trusted)).items():
                metrics.certificate_expiry.labels(name).set(not_after.timestamp())
        except (InterlockError, SQLAlchemyError, OSError, ValueError) as exc:
            _log.warning("certificate renewal failed; retrying", error=str(exc))
        await asyncio.sleep(RENEWAL_CHECK_SECONDS)
