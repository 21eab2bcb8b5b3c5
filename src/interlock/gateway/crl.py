"""The PKI's certificate revocation lists: published over HTTPS, enforced at the handshake.

The gateway serves the current CRL of the deployment's issuing CA at
``GET /pki/crl`` (DER, ``application/pkix-crl``, RFC 5280 §4.2.1.13), and the
lists of every intermediate still in use (the current one and any retired by
``pki renew-intermediate`` whose certificates are unexpired) at
``GET /pki/crl/all.pem``. It loads them into the listener's TLS context when
the listener verifies client certificates against that CA, and into the
client contexts that trust the CA (``ca: pki:internal``) to check the
servers' certificates. A watcher looks at the revoked serials and the
intermediates every second; when they change, or when the lists have used half
of their validity, it signs fresh ones and loads them into the running
contexts, so a revocation takes effect on new connections without a restart
and the lists never expire (OpenSSL refuses every certificate of a CA whose
list has expired).
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import weakref
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from sqlalchemy.exc import SQLAlchemyError

from interlock.crypto.pkix import crl_der, load_crls_pem
from interlock.errors import InterlockError
from interlock.gateway.openssl import forget_sessions
from interlock.gateway.tls import load_crl
from interlock.logs import get_logger
from interlock.pki.authority import CRL_VALIDITY, Pki

__all__ = ["CrlPublisher"]

WATCH_SECONDS: Final = 1.0
# Re-sign once half of a list's validity is gone (RFC 5280 §5.1.2.5: a new CRL is
# issued on or before nextUpdate): half a day of margin for a store outage.
RESIGN_AFTER: Final = CRL_VALIDITY / 2
_log = get_logger("interlock.gateway.crl")


_State = tuple[frozenset[int], tuple[int, ...]]  # revoked serials, intermediates' serials


@dataclass(frozen=True)
class _Signed:
    """Newly signed lists, written to ``path``, not yet loaded into the contexts."""

    state: _State
    this_update: datetime
    path: Path
    der: bytes  # the current intermediate's list
    pem: bytes  # every intermediate's list


class CrlPublisher:
    """The current CRL, as served and as loaded into a listener's context.

    Revocation is enforced twice: by the listener's handshakes (the list loaded
    into its context) and on every request (:meth:`revokes`), because a
    resumed TLS session or a connection kept open never handshakes again.
    Client contexts given to :meth:`enforce` check servers' certificates
    against the same lists.
    """

    def __init__(self, pki: Pki, work: Path, context: ssl.SSLContext | None = None) -> None:
        """Sign CRLs with ``pki``; write them under ``work``; load them into ``context``."""
        self._pki = pki
        self._work = work
        self._context = context
        self._clients: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()
        self._state: _State | None = None
        self._revoked: frozenset[int] = frozenset()
        self._this_update: datetime | None = None
        self.der = b""
        self.pem = b""
        self.pem_path: Path | None = None

    def revokes(self, serial: int) -> bool:
        """Whether the list the listener enforces revokes ``serial``.

        False for every serial when the listener does not check this CRL (no
        client certificates, or another CA's). A revocation counts here as soon
        as the watcher sees it, even while its signed list waits for the next second.
        """
        return self._context is not None and serial in self._revoked

    def refresh(self) -> bool:
        """Sign and publish new CRLs if they changed or are half expired; True when it did."""
        signed = self._sign()
        if signed is None:
            return False
        self._install(signed)
        return True

    def attach(self, context: ssl.SSLContext) -> None:
        """Load every later list into ``context`` too (it already has the current one)."""
        self._context = context

    def enforce(self, context: ssl.SSLContext) -> None:
        """Check the server certificates a client ``context`` verifies against these lists.

        The current lists are loaded now and every later one as it is signed,
        for as long as ``context`` exists. A certificate of this PKI then needs
        an unexpired list of its issuer: before the first :meth:`refresh` every
        handshake fails (closed, not open).
        """
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        if self.pem_path is not None:
            load_crl(context, self.pem_path)
        self._clients.add(context)

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
        """New lists if they are due and a new ``thisUpdate`` is possible.

        Due: the revoked serials or the intermediates changed, or the lists
        have used half of their validity.
        """
        serials = self._pki.revoked_serials()
        self._revoked = serials  # requests are checked against it at once
        state = (serials, self._pki.crl_issuers())
        if state == self._state and not self._aged():
            return None
        pems = self._pki.crls()
        crls = load_crls_pem(b"".join(pems))
        this_update = crls[0].last_update_utc
        if self._this_update is not None and this_update <= self._this_update:
            # OpenSSL keeps the list with the latest thisUpdate: wait for the next second.
            return None
        pem = b"".join(pems)
        with tempfile.NamedTemporaryFile(
            "wb", dir=self._work, prefix="crl-", suffix=".pem", delete=False
        ) as handle:
            handle.write(pem)
        return _Signed(state, this_update, Path(handle.name), crl_der(crls[0]), pem)

    def _aged(self) -> bool:
        """Whether the lists in force have used half of their validity."""
        return self._this_update is None or self._this_update + RESIGN_AFTER <= self._pki.now()

    def _install(self, signed: _Signed) -> None:
        """Load ``signed`` into every context; end the listener sessions the old list admitted."""
        try:
            for context in [self._context, *self._clients]:
                if context is not None:
                    load_crl(context, signed.path)
        except OSError:
            signed.path.unlink(missing_ok=True)
            raise
        changed = self._state is not None and signed.state != self._state
        if self._context is not None and changed and not forget_sessions(self._context):
            _log.warning("TLS sessions not invalidated; resumed sessions are refused per request")
        if self.pem_path is not None:
            self.pem_path.unlink(missing_ok=True)
        self.pem_path = signed.path
        self.der, self.pem = signed.der, signed.pem
        self._state, self._this_update = signed.state, signed.this_update
        _log.info(
            "certificate revocation lists published",
            revoked=len(signed.state[0]),
            issuers=len(signed.state[1]),
        )
