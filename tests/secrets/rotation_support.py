"""Helpers for the rotation tests: a target kept in memory and the rotator that serves it."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from interlock.actors import Operator
from interlock.secrets.rotators.base import Credential, RotationError, Rotator
from interlock.secrets.vault import SecretInfo

ADMIN = Operator("admin:test")


@dataclass
class Target:
    """A system that accepts a set of credentials, and what it was asked to do."""

    accepted: set[bytes] = field(default_factory=set)
    calls: list[tuple[str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepts(self, value: bytes) -> bool:
        """Whether ``value`` would be let in now."""
        with self.lock:
            return value in self.accepted


@dataclass
class MemoryRotator:
    """A rotator for :class:`Target`; ``fail`` names an operation that raises once."""

    target: Target
    fail: str | None = None
    before_set: Callable[[], None] | None = None

    def generate(self, current: Credential) -> bytes:
        """A random value."""
        self._called("generate", current.version)
        return secrets.token_hex(16).encode()

    def set(self, pending: Credential, current: Credential) -> None:
        """The target accepts the pending value too."""
        if self.before_set is not None:
            self.before_set()
        self._called("set", pending.version)
        with self.target.lock:
            self.target.accepted.add(pending.value.reveal())

    def test(self, pending: Credential) -> None:
        """The pending value is accepted."""
        self._called("test", pending.version)
        if not self.target.accepts(pending.value.reveal()):
            raise RotationError("not accepted")

    def retire(self, old: Credential, current: Credential) -> None:
        """The target drops the old value."""
        self._called("retire", old.version)
        with self.target.lock:
            self.target.accepted.discard(old.value.reveal())

    def _called(self, operation: str, version: int) -> None:
        self.target.calls.append((operation, version))
        if self.fail == operation:
            self.fail = None
            raise RotationError(f"{operation} failed (simulated)")


def rotators_for(rotator: Rotator) -> Callable[[SecretInfo], Rotator]:
    """A rotator factory that hands out ``rotator`` for every secret."""
    return lambda _info: rotator
