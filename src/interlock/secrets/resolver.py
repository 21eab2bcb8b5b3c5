"""The one interface through which anything obtains a secret value."""

from __future__ import annotations

from typing import Protocol

from interlock.secret import Secret

__all__ = ["SecretResolver"]


class SecretResolver(Protocol):
    """Resolves ``secret://path`` references to values."""

    def resolve(self, reference: str) -> Secret:
        """The current value behind ``reference``; ``NotFoundError`` if none. May block."""
        ...

    def cached(self, reference: str) -> Secret | None:
        """A fresh cached value, or ``None``; never blocks (safe on the event loop)."""
        ...
