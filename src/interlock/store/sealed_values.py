"""Per-deployment secret values kept sealed in the store (``sealed_settings``).

Used for values every replica must share but nobody should read from the
database alone, such as the pepper for API-key hashes. Created on first use;
concurrent first uses by several replicas agree on one value.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from interlock.clock import Clock, utc_now
from interlock.crypto import Keyring
from interlock.store.base import table_of
from interlock.store.tables import SealedSettingRow

__all__ = ["sealed_setting"]

_TABLE = table_of(SealedSettingRow)


def sealed_setting(
    engine: Engine,
    keyring: Keyring,
    name: str,
    create: Callable[[], bytes],
    *,
    now: Clock = utc_now,
) -> bytes:
    """The value called ``name``, created with ``create()`` and sealed if absent.

    The seal's associated data names the setting, so a value cannot be moved
    under another name; ``now`` stamps a new row's ``created_at``.
    """
    aad = f"interlock:setting:{name}".encode()
    with engine.connect() as connection:
        stored = connection.execute(select(_TABLE.c.value).where(_TABLE.c.name == name)).scalar()
    if stored is not None:
        return keyring.open(stored, aad)
    value = create()
    try:
        with engine.begin() as connection:
            connection.execute(
                _TABLE.insert().values(name=name, value=keyring.seal(value, aad), created_at=now())
            )
    except IntegrityError:
        return sealed_setting(
            engine, keyring, name, create, now=now
        )  # another replica won the race
    return value
