"""What a rotator is: four idempotent operations on one credential's target.

A rotator knows one kind of target (a PostgreSQL login, an Interlock API key,
an HTTPS endpoint...). The engine (:mod:`interlock.secrets.rotation`) calls it
step by step and records each step before the next, so any operation may be
called again after a crash: every one must be safe to repeat.

Rotator settings are not secret (they are shown by ``interlock secrets
show``); a secret they need, such as an admin password, is named by a
``secret://`` reference and read from the vault when the rotator runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from interlock.actors import Operator
from interlock.errors import InterlockError, InvalidRequestError
from interlock.secret import Secret

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from interlock.config.manifest import Manifest
    from interlock.crypto import Keyring
    from interlock.pki import Pki
    from interlock.secrets.vault import Vault

__all__ = ["Credential", "RotationError", "Rotator", "RotatorContext", "option"]

#: Who reads a rotator's referenced secrets, as on the audit trail.
ROTATION_ACTOR: Final = Operator("system:rotation")


class RotationError(InterlockError):
    """A rotation step failed on its target (the detail never holds a secret value)."""

    code = "rotation_failed"


@dataclass(frozen=True)
class Credential:
    """One version of a secret, as a rotator sees it."""

    name: str
    version: int
    value: Secret


class Rotator(Protocol):
    """The four operations of a rotation; each may be repeated after a crash."""

    def generate(self, current: Credential) -> bytes:
        """A new value; no effect on the target yet (it is stored as pending first)."""
        ...

    def set(self, pending: Credential, current: Credential) -> None:
        """Make the target accept ``pending`` while it still accepts ``current``."""
        ...

    def test(self, pending: Credential) -> None:
        """Use ``pending`` against the target; :class:`RotationError` if it does not work."""
        ...

    def retire(self, old: Credential, current: Credential) -> None:
        """Make the target stop accepting ``old`` (the overlap is over); ``current`` stays."""
        ...


@dataclass(frozen=True)
class RotatorContext:
    """What rotators may use: the vault (for references) and the deployment's services."""

    vault: Vault
    engine: Engine
    keyring: Keyring
    manifest: Callable[[], Manifest]
    pki: Callable[[], Pki]

    def secret(self, reference: str) -> Secret:
        """The current value behind a ``secret://`` reference in a rotator's settings."""
        from interlock.secrets.vault import name_of

        secret, _ = self.vault.read(name_of(reference), actor=ROTATION_ACTOR)
        return secret


def option(config: Mapping[str, Any], key: str, default: str | None = None) -> str:
    """Setting ``key`` as a string; :class:`InvalidRequestError` if missing and no default."""
    value = config.get(key, default)
    if value is None or value == "":
        raise InvalidRequestError(f"the rotator needs the setting {key} (-o {key}=...)")
    return str(value)
