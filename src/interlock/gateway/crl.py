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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from sqlalchemy.exc import SQLAlchemyError

from interlock.crypto.pkix import crl_der, load_crl_pem
from interlock.errors import InterlockError
from interlock.gateway.openssl import forget_sessions
from interlock.gateway.tls import load_crl
from interlock.logs import get_logger
from interlock.pki.authority import Pki

__all__ = ["CrlPublisher"]

WATCH_SECONDS: Final = 1.0
_log = get_logger("interlock.gateway.crl")


@dataclass(frozen=True)
class _Signed:
    """A newly signed list, written to ``path``, not yet loaded into the listener."""

    serials: frozenset[int]
    this_update: datetime
    path: Path
    der: bytes


class CrlPublisher:
    """The current CRL, as served and as loaded into a listener's context.

    Revocation is enforced twice: by the listener's handshakes (the list loaded
    into its context) and on every request (:meth:`revokes`), because a
    resumed TLS session or a connection kept open never handshakes again.
    """

    def __init__(self, pki: Pki, work: Path, context: ssl.SSLContext | None = None) -> None:
        """Sign CRLs with ``pki``; write them under ``work``; load them into ``context``."""
        self._pki = pki
        self._work = work
        self._context = context
        self._serials: frozenset[int] | None = None
        self._revoked: frozenset[int] = frozenset()
        self._this_update: datetime | None = None
        self.der = b""
        self.pem_path: Path | None = None

    def revokes(self, serial: int) -> bool:
        """Whether the list the listener enforces revokes ``serial``.

        False for every serial when the listener does not check this CRL (no
        client certificates, or another CA's). A revocation counts here as soon
        as the watcher sees it, even while its signed list waits for the next second.
        """
        return self._context is not None and serial in self._revoked

    def refresh(self) -> bool:
        """Sign and publish a new CRL if the revoked serials changed; True when it did."""
        signed = self._sign()
        if signed is None:
            return False
        self._install(signed)
        return True

    def attach(self, context: ssl.SSLContext) -> None:
        """Load every later list into ``context`` too (it already has the current one)."""
        self._context = context

    async def watch(self) -> None:
        """Refresh every second until cancelled.

        The list is signed off the loop and installed on it, where the
        listener's handshakes run: no handshake sees the new list with the old
        sessions still resumable.
        """
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            try:
                signed = await asyncio.to_thread(self._sign)
                if signed is not None:
                    self._install(signed)
            except (InterlockError, SQLAlchemyError, OSError, ValueError) as exc:
                _log.warning("revocation list not refreshed; retrying", error=str(exc))

    def _sign(self) -> _Signed | None:
        """A new list if the revoked serials changed and a new ``thisUpdate`` is possible."""
        serials = self._pki.revoked_serials()
        self._revoked = serials  # requests are checked against it at once
        if serials == self._serials and self.der:
            return None
        pem = self._pki.crl_pem()
        crl = load_crl_pem(pem)
        this_update = crl.last_update_utc
        if self._this_update is not None and this_update <= self._this_update:
            # OpenSSL keeps the list with the latest thisUpdate: wait for the next second.
            return None
        with tempfile.NamedTemporaryFile(
            "wb", dir=self._work, prefix="crl-", suffix=".pem", delete=False
        ) as handle:
            handle.write(pem)
        return _Signed(serials, this_update, Path(handle.name), crl_der(crl))

    def _install(self, signed: _Signed) -> None:
        """Load ``signed`` into the listener and end the sessions the old list admitted."""
        if self._context is not None:
            try:
                load_crl(self._context, signed.path)
            except OSError:
                signed.path.unlink(missing_ok=True)
                raise
            if self._serials is not None and not forget_sessions(self._context):
                _log.warning(
                    "TLS sessions not invalidated; resumed sessions are refused per request"
                )
        if self.pem_path is not None:
            self.pem_path.unlink(missing_ok=True)
        self.pem_path = signed.path
        self.der = signed.der
        self._serials, self._this_update = signed.serials, signed.this_update
        _log.info("certificate revocation list published", revoked=len(signed.serials))
