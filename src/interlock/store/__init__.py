"""The store: SQLAlchemy 2 over SQLite (default) or PostgreSQL, migrated by Alembic."""

from interlock.store.deployment import Deployment, initialise, open_deployment, open_keyring
from interlock.store.engine import create_store_engine
from interlock.store.migrate import current_revision, head_revision, upgrade
from interlock.store.sealed import RewrapReport, register_sealed_column, rewrap_all

__all__ = [
    "Deployment",
    "RewrapReport",
    "create_store_engine",
    "current_revision",
    "head_revision",
    "initialise",
    "open_deployment",
    "open_keyring",
    "register_sealed_column",
    "rewrap_all",
    "upgrade",
]
