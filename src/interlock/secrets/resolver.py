"""The one interface through which anything obtains a secret value."""

from __future__ import annotations

from typing import NoReturn, Protocol

__all__ = ["Secret", "SecretResolver"]


class Secret:
    """A secret value that does not print itself (``repr``/``str`` are masked)."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        """Wrap ``value``."""
        self._value = value

    def reveal(self) -> bytes:
        """The value itself; call only where it is sent to its destination."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")


class SecretResolver(Protocol):
    """Resolves ``secret://path`` references to values."""

    def resolve(self, reference: str) -> Secret:
        """The current value behind ``reference``; ``NotFoundError`` if none. May block."""
        ...

    def cached(self, reference: str) -> Secret | None:
        """A fresh cached value, or ``None``; never blocks (safe on the event loop)."""
        ...
