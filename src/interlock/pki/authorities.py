"""The two CAs of a deployment: an offline-capable root and the issuing intermediate.

The root (``root``) is self-signed with path length 1 and signs only the
intermediate; the intermediate (``issuing``, path length 0) signs every
end-entity certificate and the CRL. Both keys are sealed by the keyring with
the authority's name as associated data, so a sealed key cannot be moved to
another row. The root key may be kept offline: exported to a 0600 PEM file and
removed from the store; issuing goes on, re-signing the intermediate waits for
:meth:`Authorities.import_root_key`.

Renewing the intermediate retires the one before it: kept under the name
``retired-issuing-SERIAL`` (its key re-sealed for that name, ``created_at`` the
time it was retired) while certificates it signed may still be valid, so it
can go on signing a CRL for them (OpenSSL wants a list from each certificate's
own issuer); :meth:`Authorities.drop` deletes it, key and all, after that.

Deployments from before this PKI hold one self-signed CA named ``internal``
(path length 0). It is adopted as the root on first use: the same name and
key, re-certified with path length 1 and its original expiry, so certificates
it signed still verify; an intermediate is created under it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.exc import IntegrityError

from interlock.clock import Clock
from interlock.crypto import Keyring
from interlock.crypto.keyfile import read_small_file, write_private_file
from interlock.crypto.pkix import (
    Certificate,
    PrivateKey,
    certificate_pem,
    intermediate_ca,
    key_matches,
    load_certificate_pem,
    load_private_key_pem,
    private_key_pem,
    recertify_ca,
    self_signed_ca,
)
from interlock.errors import InvalidRequestError
from interlock.pki.tables import AuthorityRow
from interlock.store.base import table_of

__all__ = ["ISSUING", "RETIRED", "ROOT", "Authorities", "Authority", "RootKeyOfflineError"]

ROOT: Final = "root"
ISSUING: Final = "issuing"
RETIRED: Final = "retired-issuing-"  # + the retired intermediate's serial (hex)
LEGACY: Final = "internal"  # the single CA of deployments that predate the intermediate
ROOT_LIFETIME: Final = timedelta(days=3650)
ISSUING_LIFETIME: Final = timedelta(days=1825)
MAX_KEY_FILE_BYTES: Final = 16384
_TABLE: Final = table_of(AuthorityRow)


class RootKeyOfflineError(InvalidRequestError):
    """The operation needs the root key, which was exported and removed from the store."""

    code = "root_key_offline"


@dataclass(frozen=True)
class Authority:
    """A CA's certificate and its sealed key (``None``: kept offline).

    ``created_at``: when the row was written (for a retired intermediate, when
    it was retired), as the store returns it (naive UTC on SQLite).
    """

    name: str
    certificate: Certificate
    sealed_key: bytes | None = field(repr=False)
    created_at: datetime


class Authorities:
    """Reads, creates and changes the root and the issuing CA, one transaction each."""

    def __init__(self, engine: Engine, keyring: Keyring, deployment_id: str, now: Clock) -> None:
        """Bind to a deployment's store and keyring; ``now`` is the clock."""
        self._engine = engine
        self._keyring = keyring
        self._label = deployment_id[:8]
        self._now = now

    def ensure(self) -> tuple[Authority, Authority]:
        """The root and the issuing CA, created if missing (race-safe, idempotent)."""
        with self._engine.connect() as connection:
            found = _read(connection)
        root, issuing = found.get(ROOT), found.get(ISSUING)
        if root is not None and issuing is not None:
            return root, issuing
        try:
            with self._engine.begin() as connection:
                if root is None:
                    root = self._adopt_legacy(connection, found.get(LEGACY))
                if root is None:
                    root = self._create_root(connection)
                if issuing is None:
                    issuing = self._create_issuing(connection, root)
        except IntegrityError:
            # Another process created them first; its rows win, ours were rolled back.
            return self.ensure()
        return root, issuing

    def open_key(self, authority: Authority) -> PrivateKey:
        """The CA's private key, in memory only."""
        if authority.sealed_key is None:
            raise RootKeyOfflineError(
                "the root CA key is offline; bring it back with `interlock pki import-root FILE`"
            )
        return load_private_key_pem(self._keyring.open(authority.sealed_key, _aad(authority.name)))

    def renew_issuing(self) -> Authority:
        """A new intermediate (new key) signed by the root; needs the root key.

        The one it replaces is retired, not deleted: certificates it signed
        stay valid, and revocable, until they expire.
        """
        root, issuing = self.ensure()
        retired = RETIRED + format(issuing.certificate.serial_number, "x")
        key = self.open_key(issuing)
        with self._engine.begin() as connection:
            connection.execute(delete(_TABLE).where(_TABLE.c.name == ISSUING))
            self._insert(connection, retired, issuing.certificate, key)
            return self._create_issuing(connection, root)

    def issuing(self) -> list[Authority]:
        """The current intermediate, then the retired ones, most recently retired first."""
        with self._engine.connect() as connection:
            found = _read(connection)
        current = found.get(ISSUING) or self.ensure()[1]
        retired = [found[name] for name in found if name.startswith(RETIRED)]
        retired.sort(key=lambda authority: authority.created_at, reverse=True)
        return [current, *retired]

    def drop(self, retired: Authority) -> None:
        """Delete a retired intermediate and its key (none of its certificates is valid)."""
        if not retired.name.startswith(RETIRED):
            raise InvalidRequestError(f"{retired.name} is not a retired intermediate")
        with self._engine.begin() as connection:
            connection.execute(delete(_TABLE).where(_TABLE.c.name == retired.name))

    def export_root(self, path: Path) -> None:
        """Write the root key as PEM to a new file, mode 0600; the store keeps its copy."""
        root, _ = self.ensure()
        pem = private_key_pem(self.open_key(root))
        try:
            write_private_file(path, pem)
        except FileExistsError:
            raise InvalidRequestError(f"{path} already exists; refusing to overwrite it") from None
        except OSError as exc:
            raise InvalidRequestError(f"cannot write {path}: {exc.strerror}") from None

    def remove_root_key(self) -> None:
        """Delete the sealed root key from the store (after :meth:`export_root`)."""
        self.ensure()
        with self._engine.begin() as connection:
            connection.execute(update(_TABLE).where(_TABLE.c.name == ROOT).values(private_key=None))

    def import_root_key(self, path: Path) -> None:
        """Seal the root key from a PEM file back into the store; it must match the root."""
        root, _ = self.ensure()
        key = _read_key_file(path)
        if not key_matches(root.certificate, key):
            raise InvalidRequestError(f"{path} does not hold the key of this deployment's root CA")
        sealed = self._keyring.seal(private_key_pem(key), _aad(ROOT))
        with self._engine.begin() as connection:
            connection.execute(
                update(_TABLE).where(_TABLE.c.name == ROOT).values(private_key=sealed)
            )

    # -- creation ------------------------------------------------------------

    def _create_root(self, connection: Connection) -> Authority:
        certificate, key = self_signed_ca(
            f"Interlock root CA {self._label}", ROOT_LIFETIME, path_length=1, now=self._now()
        )
        return self._insert(connection, ROOT, certificate, key)

    def _create_issuing(self, connection: Connection, root: Authority) -> Authority:
        certificate, key = intermediate_ca(
            root.certificate,
            self.open_key(root),
            f"Interlock issuing CA {self._label}",
            ISSUING_LIFETIME,
            now=self._now(),
        )
        return self._insert(connection, ISSUING, certificate, key)

    def _adopt_legacy(self, connection: Connection, legacy: Authority | None) -> Authority | None:
        if legacy is None:
            return None
        key = self.open_key(legacy)
        certificate = recertify_ca(legacy.certificate, key, path_length=1, now=self._now())
        connection.execute(delete(_TABLE).where(_TABLE.c.name == LEGACY))
        return self._insert(connection, ROOT, certificate, key)

    def _insert(
        self, connection: Connection, name: str, certificate: Certificate, key: PrivateKey
    ) -> Authority:
        sealed = self._keyring.seal(private_key_pem(key), _aad(name))
        now = self._now()
        connection.execute(
            _TABLE.insert().values(
                name=name,
                certificate_pem=certificate_pem(certificate).decode(),
                private_key=sealed,
                created_at=now,
            )
        )
        return Authority(name, certificate, sealed, now)


def _read(connection: Connection) -> dict[str, Authority]:
    rows = connection.execute(select(_TABLE)).all()
    return {
        row.name: Authority(
            row.name,
            load_certificate_pem(row.certificate_pem.encode()),
            row.private_key,
            row.created_at,
        )
        for row in rows
    }


def _read_key_file(path: Path) -> PrivateKey:
    data = read_small_file(path, MAX_KEY_FILE_BYTES)
    try:
        return load_private_key_pem(data)
    except (ValueError, TypeError):
        raise InvalidRequestError(f"{path} does not hold a PEM ECDSA P-256 private key") from None


def _aad(name: str) -> bytes:
    return f"interlock:pki:authority:{name}".encode()
