"""The PKI's certificate revocation list: published over HTTPS, enforced at the handshake.

The gateway serves the current CRL of the deployment's issuing CA at
``GET /pki/crl`` (DER, ``application/pkix-crl``, RFC 5280 §4.2.1.13) and, when
its listener verifies client certificates against that CA, loads it into the
listener's TLS context. A watcher looks at the revoked serials every second;
when they change it signs a fresh CRL and loads it into the running context,
so a revocation takes effect on new connections without a restart.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Final

from sqlalchemy.exc import SQLAlchemyError

from interlock.crypto.pkix import crl_der, load_crl_pem
from interlock.errors import InterlockError
from interlock.gateway.tls import load_crl
from interlock.logs import get_logger
from interlock.pki.authority import Pki

__all__ = ["CrlPublisher"]

WATCH_SECONDS: Final = 1.0
_log = get_logger("interlock.gateway.crl")


class CrlPublisher:
    """The current CRL, as served and as loaded into a listener's context."""

    def __init__(self, pki: Pki, work: Path, context: ssl.SSLContext | None = None) -> None:
        """Sign CRLs with ``pki``; write them under ``work``; load them into ``context``."""
        self._pki = pki
        self._work = work
        self._context = context
        self._serials: frozenset[int] | None = None
        self._this_update: datetime | None = None
        self.der = b""
        self.pem_path: Path | None = None

    def refresh(self) -> bool:
        """Sign and publish a new CRL if the revoked serials changed; True when it did."""
        serials = self._pki.revoked_serials()
        if serials == self._serials and self.der:
            return False
        pem = self._pki.crl_pem()
        crl = load_crl_pem(pem)
        this_update = crl.last_update_utc
        if self._this_update is not None and this_update <= self._this_update:
            # OpenSSL keeps the list with the latest thisUpdate: wait for the next second.
            return False
        with tempfile.NamedTemporaryFile(
            "wb", dir=self._work, prefix="crl-", suffix=".pem", delete=False
        ) as handle:
            handle.write(pem)
        path = Path(handle.name)
        if self._context is not None:
            load_crl(self._context, path)
        if self.pem_path is not None:
            self.pem_path.unlink(missing_ok=True)
        self.pem_path = path
        self.der = crl_der(crl)
        self._serials, self._this_update = serials, this_update
        _log.info("certificate revocation list published", revoked=len(serials))
        return True

    def attach(self, context: ssl.SSLContext) -> None:
        """Load every later list into ``context`` too (it already has the current one)."""
        self._context = context

    async def watch(self) -> None:
        """Refresh every second until cancelled."""
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            try:
                await asyncio.to_thread(self.refresh)
            except (InterlockError, SQLAlchemyError, OSError, ValueError) as exc:
                _log.warning("revocation list not refreshed; retrying", error=str(exc))
