"""After a KEK rotation, every registered sealed column is re-wrapped, resumably."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from interlock.config.settings import Settings
from interlock.crypto import needs_rewrap
from interlock.store import initialise, open_deployment, rewrap_all
from interlock.store.sealed import SealedColumn
from interlock.tables import sealed_columns

_items = sa.Table(
    "test_sealed_items",
    sa.MetaData(),
    sa.Column("tenant", sa.String(20), primary_key=True),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=True),
)


def test_rewrap_moves_every_sealed_value_to_the_current_version(
    tmp_path: Path, store_url: str
) -> None:
    """Values in a composite-key table and the deployment canary all move to the new KEK."""
    settings = Settings(data_dir=tmp_path / "data", database_url=store_url)
    deployment = initialise(settings)
    keyring = deployment.keyring
    _items.create(deployment.engine)
    columns = (*sealed_columns(), SealedColumn(_items, "value"))
    rows: list[dict[str, bytes | int | str | None]] = [
        {
            "tenant": tenant,
            "id": i,
            "value": keyring.seal(f"v{i}".encode(), f"{tenant}/{i}".encode()),
        }
        for tenant in ("a", "b")
        for i in range(7)
    ]
    rows.append({"tenant": "c", "id": 0, "value": None})
    with deployment.engine.begin() as connection:
        connection.execute(_items.insert(), rows)

    keyring.rotate()
    report = rewrap_all(deployment.engine, keyring, columns, batch_size=3)
    # 14 sealed items and the deployment canary move; the NULL is only examined.
    assert (report.examined, report.rewrapped, report.current, report.empty) == (16, 15, 0, 1)
    again = rewrap_all(deployment.engine, keyring, columns, batch_size=3)
    assert (again.rewrapped, again.current, again.empty, again.contended) == (0, 15, 1, 0)

    with deployment.engine.connect() as connection:
        stored = connection.execute(sa.select(_items).where(_items.c.value.is_not(None))).all()
    for tenant, i, blob in stored:
        assert not needs_rewrap(keyring, blob)
        assert keyring.open(blob, f"{tenant}/{i}".encode()) == f"v{i}".encode()
    deployment.close()
    open_deployment(settings).close()  # the re-wrapped canary still proves the binding
