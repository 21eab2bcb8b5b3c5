"""Envelope encryption: a fresh data key per record, wrapped by the keyring's KEK.

Blob layout (all integers big-endian)::

    offset  size  field
    0       3     magic b"ILK"
    3       1     format version (1)
    4       16    keyring id
    20      4     KEK version (uint32)
    24      2     length L of the wrapped data key (uint16)
    26      L     wrapped data key (file keyring: nonce 12 || key 32 || tag 16)
    26+L    12    bulk nonce
    38+L    n+16  bulk ciphertext || tag

The first ``26`` bytes (the header) are the associated data of the key wrap,
so the keyring id and version cannot be changed without detection. The bulk
is authenticated with the format version and the caller's associated data
(length-prefixed, so two different AADs can never encode alike). The bulk does
not depend on the wrapping, so :func:`rewrap` can move a record to a new KEK
version by replacing bytes ``20..38+L`` and leaving the bulk untouched, and
without knowing the caller's associated data.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from interlock.crypto import aead
from interlock.crypto.kek import KeyEncryptionKey
from interlock.errors import DecryptionError, UnknownKeyVersionError

__all__ = [
    "MAX_PLAINTEXT",
    "SealedHeader",
    "inspect_unverified",
    "needs_rewrap",
    "open_sealed",
    "rewrap",
    "seal",
]

_MAGIC: Final = b"ILK\x01"
_PREFIX: Final = struct.Struct(">4s16sIH")  # magic+format, keyring id, version, L
_MAX_WRAPPED: Final = 1024
#: Largest plaintext ``seal`` accepts; bulk data belongs in files, not records.
MAX_PLAINTEXT: Final = 64 * 1024 * 1024
_FAILED: Final = (
    "decryption failed: the sealed data was altered or the associated data does not match"
)


@dataclass(frozen=True)
class SealedHeader:
    """The public part of a sealed blob. Unverified until the blob is opened."""

    keyring_id: str
    kek_version: int
    wrapped_key: bytes
    bulk: bytes  # nonce || ciphertext || tag


def seal(kek: KeyEncryptionKey, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt ``plaintext`` under a fresh data key bound to ``aad``."""
    if len(plaintext) > MAX_PLAINTEXT:
        raise ValueError(f"plaintext over {MAX_PLAINTEXT} bytes cannot be sealed")
    dek = aead.new_key()
    nonce = aead.new_nonce()
    bulk = nonce + aead.encrypt(dek, nonce, plaintext, _bulk_aad(aad))
    return _assemble(kek, kek.current_version, dek, bulk)


def open_sealed(kek: KeyEncryptionKey, blob: bytes, aad: bytes) -> bytes:
    """Decrypt a blob from :func:`seal`; the same ``aad`` must be given."""
    header = inspect_unverified(blob)
    dek = _unwrap(kek, blob, header)
    nonce, ciphertext = header.bulk[: aead.NONCE_SIZE], header.bulk[aead.NONCE_SIZE :]
    return aead.decrypt(dek, nonce, ciphertext, _bulk_aad(aad))


def rewrap(kek: KeyEncryptionKey, blob: bytes) -> bytes:
    """The same record with its data key wrapped by the current KEK version.

    The bulk ciphertext is carried over byte for byte. The old wrapping is
    authenticated before anything is re-wrapped.
    """
    header = inspect_unverified(blob)
    dek = _unwrap(kek, blob, header)
    return _assemble(kek, kek.current_version, dek, header.bulk)


def needs_rewrap(kek: KeyEncryptionKey, blob: bytes) -> bool:
    """Whether ``blob`` is wrapped by an older KEK version than the current one."""
    return inspect_unverified(blob).kek_version != kek.current_version


def inspect_unverified(blob: bytes) -> SealedHeader:
    """Parse the header without authenticating anything (hence the name)."""
    if len(blob) > MAX_PLAINTEXT + _PREFIX.size + _MAX_WRAPPED + 64:
        raise DecryptionError(_FAILED)
    if len(blob) < _PREFIX.size or blob[:4] != _MAGIC:
        raise DecryptionError(_FAILED)
    _, keyring_id, version, wrapped_len = _PREFIX.unpack_from(blob)
    end = _PREFIX.size + wrapped_len
    if len(blob) < end + aead.NONCE_SIZE + aead.TAG_SIZE:
        raise DecryptionError(_FAILED)
    return SealedHeader(keyring_id.hex(), version, blob[_PREFIX.size : end], blob[end:])


def _assemble(kek: KeyEncryptionKey, version: int, dek: bytes, bulk: bytes) -> bytes:
    header = _header(kek.keyring_id, version, kek.wrapped_size)
    wrapped = kek.wrap(dek, header, version)
    if len(wrapped) != kek.wrapped_size or len(wrapped) > _MAX_WRAPPED:
        raise DecryptionError("the key-encryption backend returned a malformed wrapped key")
    return header + wrapped + bulk


def _header(keyring_id: str, version: int, wrapped_len: int) -> bytes:
    return _PREFIX.pack(_MAGIC, bytes.fromhex(keyring_id), version, wrapped_len)


def _unwrap(kek: KeyEncryptionKey, blob: bytes, header: SealedHeader) -> bytes:
    if header.keyring_id != kek.keyring_id:
        raise UnknownKeyVersionError(
            f"sealed with keyring {header.keyring_id}, not this keyring ({kek.keyring_id})"
        )
    if not kek.has_version(header.kek_version):
        raise UnknownKeyVersionError(
            f"sealed with KEK version {header.kek_version}, which this keyring does not hold"
        )
    dek = kek.unwrap(header.wrapped_key, blob[: _PREFIX.size], header.kek_version)
    if len(dek) != aead.KEY_SIZE:
        raise DecryptionError(_FAILED)
    return dek


def _bulk_aad(aad: bytes) -> bytes:
    return _MAGIC + struct.pack(">Q", len(aad)) + aad
