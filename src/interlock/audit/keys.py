"""The log's two keys, kept in the audit database sealed by the deployment keyring.

* ``checkpoint``: the Ed25519 key that signs tree heads; its name is the log's
  origin (the C2SP convention), its public key is stored in clear so that
  verification needs no keyring.
* ``pseudonym``: the HMAC-SHA256 key of :mod:`interlock.audit.pseudonyms`.

Both are created on first open; two processes opening a new log at once agree
on one key each (the loser of the insert race reads the winner's). The rows
are insert-only like the rest of the log, so a key is never replaced; the
keyring's KEK versions that sealed them must be kept (``interlock keyring
rotate`` keeps old versions).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from interlock.audit.errors import AuditError
from interlock.audit.pseudonyms import KEY_SIZE, Pseudonymiser
from interlock.audit.schema import KEYS
from interlock.crypto import Keyring
from interlock.crypto.ed25519 import Ed25519Signer
from interlock.proofs.note import NoteVerifier

__all__ = ["LogKeys", "load_keys", "log_verifier"]

CHECKPOINT: Final = "checkpoint"
PSEUDONYM: Final = "pseudonym"


@dataclass(frozen=True)
class LogKeys:
    """The unsealed keys of one log; shown in no ``repr``."""

    origin: str
    signer: Ed25519Signer = field(repr=False)
    pseudonymiser: Pseudonymiser = field(repr=False)

    @property
    def verifier(self) -> NoteVerifier:
        """The public half, as a note verifier."""
        return NoteVerifier(self.origin, self.signer.public_key)


def _aad(purpose: str, name: str) -> bytes:
    return f"interlock:audit:key:{purpose}:{name}".encode()


def load_keys(engine: Engine, keyring: Keyring, origin: str) -> LogKeys:
    """Unseal the log's keys, creating them (named ``origin``) on first use.

    Raises :class:`AuditError` when the log was created under another origin.
    """
    signer_row = _ensure(engine, keyring, CHECKPOINT, origin, _new_signer)
    if signer_row[0] != origin:
        raise AuditError(
            f"the audit log's origin is {signer_row[0]!r}, not {origin!r} "
            "(INTERLOCK_AUDIT_ORIGIN must stay the same for the life of a log)"
        )
    hmac_row = _ensure(
        engine, keyring, PSEUDONYM, origin, lambda: (None, secrets.token_bytes(KEY_SIZE))
    )
    signer = Ed25519Signer.from_private_bytes(
        keyring.open(signer_row[1], _aad(CHECKPOINT, signer_row[0]))
    )
    pseudonymiser = Pseudonymiser(keyring.open(hmac_row[1], _aad(PSEUDONYM, hmac_row[0])))
    return LogKeys(origin, signer, pseudonymiser)


def log_verifier(engine: Engine) -> NoteVerifier | None:
    """The checkpoint key as the log itself records it (``None`` for a log without one).

    Only as trustworthy as the database: pin the key (``--key``) to detect a replaced log.
    """
    with engine.connect() as connection:
        row = connection.execute(
            select(KEYS.c.name, KEYS.c.public_key).where(KEYS.c.purpose == CHECKPOINT)
        ).first()
    if row is None or row.public_key is None:
        return None
    return NoteVerifier(row.name, bytes(row.public_key))


def _new_signer() -> tuple[bytes | None, bytes]:
    signer = Ed25519Signer.generate()
    return signer.public_key, signer.private_bytes_for_sealing()


def _ensure(
    engine: Engine,
    keyring: Keyring,
    purpose: str,
    name: str,
    create: Callable[[], tuple[bytes | None, bytes]],
) -> tuple[str, bytes]:
    query = select(KEYS.c.name, KEYS.c.sealed).where(KEYS.c.purpose == purpose)
    with engine.connect() as connection:
        row = connection.execute(query).first()
    if row is not None:
        return row.name, bytes(row.sealed)
    public, secret = create()
    sealed = keyring.seal(secret, _aad(purpose, name))
    try:
        with engine.begin() as connection:
            connection.execute(
                KEYS.insert().values(
                    purpose=purpose,
                    name=name,
                    public_key=public,
                    sealed=sealed,
                    created_us=time.time_ns() // 1000,
                )
            )
    except IntegrityError:
        with engine.connect() as connection:
            row = connection.execute(query).one()  # another process won the race
        return row.name, bytes(row.sealed)
    return name, sealed
