"""interlock.tables names every package's table module, so no sealed column is left behind."""

from __future__ import annotations

import pkgutil

import interlock
from interlock.tables import TABLE_MODULES, metadata, sealed_columns


def test_every_table_module_of_the_package_is_assembled() -> None:
    """A new ``PACKAGE/tables.py`` must be added to interlock.tables (re-wrap depends on it)."""
    found = {
        info.name
        for info in pkgutil.walk_packages(interlock.__path__, prefix="interlock.")
        if info.name.endswith(".tables") and info.name != "interlock.tables"
    }
    assembled = {module.__name__ for module in TABLE_MODULES}
    assert found == assembled


def test_every_sealed_column_is_on_the_assembled_metadata() -> None:
    """The sealed columns the re-wrap pass walks belong to tables of the one metadata."""
    columns = sealed_columns()
    assert {c.table.name for c in columns} >= {
        "deployment",
        "pki_authorities",
        "oauth_signing_keys",
        "vault_versions",
    }
    assert all(c.table.name in metadata.tables for c in columns)
