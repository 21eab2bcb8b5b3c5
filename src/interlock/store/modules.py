"""Every module that defines tables, by name.

Alembic's environment and the re-wrap pass need all tables registered; the
store names the modules instead of importing domain packages at import time,
so the foundation does not depend on the domain layer.
"""

from __future__ import annotations

import importlib
from typing import Final

__all__ = ["TABLE_MODULES", "import_table_modules"]

TABLE_MODULES: Final = (
    "interlock.store.tables",
    "interlock.pki.tables",
    "interlock.identity.tables",
    "interlock.secrets.tables",
    "interlock.oauth.tables",
    "interlock.replay.tables",
)


def import_table_modules() -> None:
    """Import every table module so that its tables and sealed columns are registered."""
    for name in TABLE_MODULES:
        importlib.import_module(name)
