"""Every table of the store, assembled in one place by plain imports.

Each package owns its tables (``identity/tables.py``, ``pki/tables.py``, ...)
and registers them, with their sealed columns, on the store's one metadata when
imported. This module imports them all, so that what needs every table says so
by importing it: the key-encryption-key re-wrap pass (every sealed column must
move, or a rotation would leave rows behind) and the migration check. It sits
above the domain packages and below the faces; the store never imports upwards.
"""

from __future__ import annotations

from types import ModuleType

from sqlalchemy import MetaData

from interlock.events import tables as events_tables
from interlock.files import tables as files_tables
from interlock.identity import tables as identity_tables
from interlock.messaging import tables as messaging_tables
from interlock.oauth import tables as oauth_tables
from interlock.pki import tables as pki_tables
from interlock.privacy import tables as privacy_tables
from interlock.replay import tables as replay_tables
from interlock.secrets import tables as secrets_tables
from interlock.store import tables as store_tables
from interlock.store.base import metadata as _metadata
from interlock.store.sealed import SealedColumn, registered_sealed_columns

__all__ = ["TABLE_MODULES", "metadata", "sealed_columns"]

#: The table module of every package, in the order their migrations created them.
TABLE_MODULES: tuple[ModuleType, ...] = (
    store_tables,
    pki_tables,
    identity_tables,
    secrets_tables,
    oauth_tables,
    replay_tables,
    privacy_tables,
    messaging_tables,
    events_tables,
    files_tables,
)

metadata: MetaData = _metadata
"""The store's metadata with every package's tables on it."""


def sealed_columns() -> tuple[SealedColumn, ...]:
    """Every sealed column of every package."""
    return registered_sealed_columns()
