"""A minimal sealed secret store: ``put`` a value, ``resolve`` a reference.

Values are sealed with the keyring, bound to the secret's name (moving a
sealed value to another name fails to open). Reads are cached briefly so the
gateway does not hit the store per request, yet picks up a new value within
``cache_seconds`` without a restart.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import Engine, select, update

from interlock.crypto import Keyring
from interlock.errors import InvalidRequestError, NotFoundError
from interlock.secrets.resolver import Secret
from interlock.secrets.tables import SecretRow
from interlock.store.base import table_of

__all__ = ["MAX_SECRET_BYTES", "SecretStore"]

MAX_SECRET_BYTES: Final = 64 * 1024
_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$")
_SCHEME: Final = "secret://"
_TABLE = table_of(SecretRow)


class SecretStore:
    """Named secrets of one deployment (implements ``SecretResolver``)."""

    def __init__(self, engine: Engine, keyring: Keyring, cache_seconds: float = 5.0) -> None:
        """Bind to the store; ``cache_seconds`` bounds how stale a resolved value may be."""
        self._engine = engine
        self._keyring = keyring
        self._ttl = cache_seconds
        self._cache: dict[str, tuple[float, Secret]] = {}
        self._lock = threading.Lock()

    def put(self, name: str, value: bytes) -> int:
        """Store a new value under ``name``; returns its version (1, 2, ...)."""
        _check_name(name)
        if not value:
            raise InvalidRequestError("a secret cannot be empty")
        if len(value) > MAX_SECRET_BYTES:
            raise InvalidRequestError(f"a secret is at most {MAX_SECRET_BYTES} bytes")
        sealed = self._keyring.seal(value, _aad(name))
        now = datetime.now(UTC)
        with self._engine.begin() as connection:
            current = connection.execute(
                select(_TABLE.c.version).where(_TABLE.c.name == name).with_for_update()
            ).scalar()
            if current is None:
                connection.execute(
                    _TABLE.insert().values(name=name, value=sealed, version=1, updated_at=now)
                )
                version = 1
            else:
                version = current + 1
                connection.execute(
                    update(_TABLE)
                    .where(_TABLE.c.name == name)
                    .values(value=sealed, version=version, updated_at=now)
                )
        with self._lock:
            self._cache.pop(name, None)
        return version

    def names(self) -> list[tuple[str, int, datetime]]:
        """Name, version and last update of every secret (never values)."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(_TABLE.c.name, _TABLE.c.version, _TABLE.c.updated_at).order_by(_TABLE.c.name)
            )
            return [(r.name, r.version, r.updated_at) for r in rows]

    def cached(self, reference: str) -> Secret | None:
        """The value behind ``reference`` if cached and fresh; never asks the store."""
        with self._lock:
            entry = self._cache.get(reference.removeprefix(_SCHEME))
        if entry is None or time.monotonic() - entry[0] >= self._ttl:
            return None
        return entry[1]

    def resolve(self, reference: str) -> Secret:
        """The value behind ``secret://name``."""
        if not reference.startswith(_SCHEME):
            raise InvalidRequestError(f"not a secret reference: {reference!r}")
        name = reference.removeprefix(_SCHEME)
        _check_name(name)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        with self._engine.connect() as connection:
            sealed = connection.execute(
                select(_TABLE.c.value).where(_TABLE.c.name == name)
            ).scalar()
        if sealed is None:
            raise NotFoundError(f"no secret named {name!r}; store it with `interlock secrets put`")
        secret = Secret(self._keyring.open(sealed, _aad(name)))
        with self._lock:
            self._cache[name] = (now, secret)
        return secret


def _check_name(name: str) -> None:
    if not _NAME.match(name) or len(name) > 200:
        raise InvalidRequestError(
            f"invalid secret name {name!r}: lower-case path segments like erp/api-key"
        )


def _aad(name: str) -> bytes:
    return f"interlock:secret:{name}".encode()
