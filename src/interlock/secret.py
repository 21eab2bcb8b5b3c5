"""The secret value type: masked in ``repr`` and ``str``, refuses to be pickled.

A foundation type: the server's vault and resolver, and the client SDK, hand
secrets around in it so that a log line, a traceback or a pickle cannot carry
the value by accident (house rule 5).
"""

from __future__ import annotations

from typing import NoReturn

__all__ = ["Secret"]


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
