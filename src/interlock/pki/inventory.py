"""The record of issued end-entity certificates: what was issued, renewed, revoked.

Rows hold the certificate (public) and its facts for listing; private keys are
never stored. The selection rules for listing and renewal live here, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, Connection, and_, false, or_, select

from interlock.errors import NotFoundError
from interlock.pki.tables import CertificateRow
from interlock.store.base import as_utc, table_of

__all__ = ["TABLE", "CertificateInfo", "Kind", "Status", "find", "select_listed"]

Kind = Literal["client", "server", "as2"]
Status = Literal["active", "renewed", "expired", "revoked"]
TABLE: Final = table_of(CertificateRow)


@dataclass(frozen=True)
class CertificateInfo:
    """An issued certificate as listed; ``status`` is as of the listing."""

    serial: str
    kind: Kind
    name: str
    identity: str | None
    hosts: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    ephemeral: bool
    revoked_at: datetime | None
    revocation_reason: str | None
    replaced_by: str | None
    status: Status

    def left(self, now: datetime) -> timedelta:
        """Time until expiry (negative once expired)."""
        return self.not_after - now


def find(connection: Connection, serial: str, now: datetime) -> CertificateInfo:
    """One certificate by serial; :class:`NotFoundError` if this CA never issued it."""
    row = connection.execute(select(TABLE).where(TABLE.c.serial == serial)).first()
    if row is None:
        serials = connection.execute(select(TABLE.c.serial)).scalars().all()
        raise NotFoundError.unknown("certificate", serial, serials, where="issued by this PKI")
    return info_of(row, now)


def select_listed(
    connection: Connection,
    now: datetime,
    expiring_within: timedelta | None,
    *,
    include_revoked: bool,
) -> list[CertificateInfo]:
    """Certificates worth showing, soonest expiry first.

    Without a window: every unexpired one (revoked ones only if asked), and
    expired ones nobody renewed or revoked yet, since they still need a
    decision. With a window: only certificates due for renewal, which are
    those still in use (not revoked, renewed or ephemeral) that expire within
    it or have already expired.
    """
    if expiring_within is not None:
        where = and_(_in_use(), TABLE.c.not_after <= now + expiring_within)
    else:
        where = or_(TABLE.c.not_after > now, _in_use())
        if not include_revoked:
            where = and_(where, TABLE.c.revoked_at.is_(None))
    rows = connection.execute(select(TABLE).where(where).order_by(TABLE.c.not_after)).all()
    return [info_of(row, now) for row in rows]


def _in_use() -> ColumnElement[bool]:
    return and_(
        TABLE.c.revoked_at.is_(None),
        TABLE.c.replaced_by.is_(None),
        TABLE.c.ephemeral == false(),
    )


def info_of(row: Any, now: datetime) -> CertificateInfo:
    """A row as a :class:`CertificateInfo`, with its status as of ``now``."""
    not_after = as_utc(row.not_after)
    revoked_at = None if row.revoked_at is None else as_utc(row.revoked_at)
    status: Status
    if revoked_at is not None:
        status = "revoked"
    elif not_after <= now:
        status = "expired"
    elif row.replaced_by is not None:
        status = "renewed"
    else:
        status = "active"
    return CertificateInfo(
        serial=row.serial,
        kind=row.kind,
        name=row.name,
        identity=row.identity,
        hosts=tuple(row.hosts.split()) if row.hosts else (),
        not_before=as_utc(row.not_before),
        not_after=not_after,
        ephemeral=row.ephemeral,
        revoked_at=revoked_at,
        revocation_reason=row.revocation_reason,
        replaced_by=row.replaced_by,
        status=status,
    )
