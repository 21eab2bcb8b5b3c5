"""Per-deployment secret values kept sealed in the store (``sealed_settings``).

Used for values every replica must share but nobody should read from the
database alone, such as the pepper for API-key hashes. Created on first use;
concurrent first uses by several replicas agree on one value.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from interlock.crypto import Keyring
from interlock.store.base import table_of
from interlock.store.tables import SealedSettingRow

__all__ = ["sealed_setting"]

_TABLE = table_of(SealedSettingRow)


def sealed_setting(
    engine: Engine, keyring: Keyring, name: str, create: Callable[[], bytes]
) -> bytes:
    """The value called ``name``, created with ``create()`` and sealed if absent."""
    aad = f"interlock:setting:{name}".encode()
    with engine.connect() as connection:
        stored = connection.execute(select(_TABLE.c.value).where(_TABLE.c.name == name)).scalar()
    if stored is not None:
        return keyring.open(stored, aad)
    value = create()
    try:
        with engine.begin() as connection:
            connection.execute(
                _TABLE.insert().values(
                    name=name, value=keyring.seal(value, aad), created_at=datetime.now(UTC)
                )
            )
    except IntegrityError:
        return sealed_setting(engine, keyring, name, create)  # another replica won the race
    return value
