"""Alembic migrations of the Interlock store (one linear history)."""
