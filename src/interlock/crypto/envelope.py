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

The first 26 bytes (the header) are the associated data of the key wrap, so
the keyring id, KEK version and L cannot be changed without detection. The
bulk is encrypted under the data key with associated data::

    b"ILK\x01" || uint64 len(aad) || aad

binding the format version and the caller's ``aad``; the length prefix means
two different ``aad`` values can never encode alike. The bulk does not depend
on the wrapping, so :func:`rewrap` moves a record to a new KEK version by
replacing bytes ``20 .. 26+L`` (version, L, wrapped key) and copying the bulk
(from offset ``26+L`` on) byte for byte, without the caller's associated data.

Size caps: ``seal`` takes at most :data:`MAX_PLAINTEXT` (64 MiB; records, not
files, are sealed here, and the cap keeps a hostile blob from costing more
memory than a legitimate one), and any blob longer than :data:`MAX_BLOB` is
refused before it is parsed.

Failures: any altered, truncated or extended blob, wrong magic or format, or
wrong associated data raises :class:`DecryptionError` with one opaque message.
A blob naming a keyring id or KEK version this keyring does not hold raises
:class:`UnknownKeyVersionError` naming them (the header is public, so this
leaks nothing; it tells an operator which rotation a keyring file is missing).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from interlock.crypto import aead
from interlock.crypto.kek import KeyEncryptionKey
from interlock.errors import CryptoError, DecryptionError, UnknownKeyVersionError

__all__ = [
    "MAX_BLOB",
    "MAX_PLAINTEXT",
    "SealedHeader",
    "inspect_unverified",
    "needs_rewrap",
    "open_sealed",
    "rewrap",
    "seal",
]

_MAGIC: Final = b"ILK\x01"  # "ILK" and format version 1
_PREFIX: Final = struct.Struct(">4s16sIH")  # magic+format, keyring id, version, L
_MAX_WRAPPED: Final = 1024
#: Largest plaintext ``seal`` accepts; bulk data belongs in files, not records.
MAX_PLAINTEXT: Final = 64 * 1024 * 1024
#: Largest blob ``open_sealed``, ``rewrap`` and ``needs_rewrap`` will parse.
MAX_BLOB: Final = _PREFIX.size + _MAX_WRAPPED + aead.NONCE_SIZE + MAX_PLAINTEXT + aead.TAG_SIZE
_FAILED: Final = aead.DECRYPTION_FAILED


@dataclass(frozen=True)
class SealedHeader:
    """The parts of a sealed blob, parsed but not authenticated until it is opened."""

    keyring_id: str
    kek_version: int
    wrapped_key: bytes
    bulk: bytes  # nonce || ciphertext || tag


def seal(kek: KeyEncryptionKey, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt ``plaintext`` under a fresh data key bound to ``aad``.

    ``aad`` should name the record's identity (table, row id, field), so that a
    blob copied to another record does not open there. It is authenticated,
    not stored: :func:`open_sealed` needs it again. Raises :class:`CryptoError`
    for a plaintext over :data:`MAX_PLAINTEXT` bytes.
    """
    if len(plaintext) > MAX_PLAINTEXT:
        raise CryptoError(f"plaintext over {MAX_PLAINTEXT} bytes cannot be sealed")
    dek = aead.new_key()
    nonce = aead.new_nonce()
    bulk = nonce + aead.encrypt(dek, nonce, plaintext, _bulk_aad(aad))
    return _assemble(kek, kek.current_version, dek, bulk)


def open_sealed(kek: KeyEncryptionKey, blob: bytes, aad: bytes) -> bytes:
    """Decrypt a blob from :func:`seal`; the same ``aad`` must be given.

    Raises :class:`UnknownKeyVersionError` if the blob names a keyring or KEK
    version ``kek`` does not hold, and :class:`DecryptionError` on any other failure.
    """
    header = inspect_unverified(blob)
    dek = _unwrap(kek, blob, header)
    nonce, ciphertext = header.bulk[: aead.NONCE_SIZE], header.bulk[aead.NONCE_SIZE :]
    return aead.decrypt(dek, nonce, ciphertext, _bulk_aad(aad))


def rewrap(kek: KeyEncryptionKey, blob: bytes) -> bytes:
    """The same record with its data key wrapped by the current KEK version.

    The bulk ciphertext is carried over byte for byte, so the caller's
    associated data is not needed. The old wrapping is authenticated before
    anything is re-wrapped (so a forged header cannot be laundered into a
    current one); the bulk cannot be checked without the associated data, and
    an altered bulk stays unopenable after re-wrapping.
    """
    header = inspect_unverified(blob)
    dek = _unwrap(kek, blob, header)
    return _assemble(kek, kek.current_version, dek, header.bulk)


def needs_rewrap(kek: KeyEncryptionKey, blob: bytes) -> bool:
    """Whether ``blob`` is wrapped by another KEK version than the current one.

    Reads the public header only; :class:`DecryptionError` if it is malformed.
    """
    return inspect_unverified(blob).kek_version != kek.current_version


def inspect_unverified(blob: bytes) -> SealedHeader:
    """Parse the header without authenticating anything (hence the name)."""
    if len(blob) > MAX_BLOB:
        raise DecryptionError(_FAILED)
    if len(blob) < _PREFIX.size or blob[:4] != _MAGIC:
        raise DecryptionError(_FAILED)
    _, keyring_id, version, wrapped_len = _PREFIX.unpack_from(blob)
    end = _PREFIX.size + wrapped_len
    if wrapped_len > _MAX_WRAPPED or len(blob) < end + aead.NONCE_SIZE + aead.TAG_SIZE:
        raise DecryptionError(_FAILED)
    return SealedHeader(keyring_id.hex(), version, blob[_PREFIX.size : end], blob[end:])


def _assemble(kek: KeyEncryptionKey, version: int, dek: bytes, bulk: bytes) -> bytes:
    size = kek.wrapped_size
    if not 0 < size <= _MAX_WRAPPED:
        raise CryptoError(f"the key-encryption backend declares a wrapped size of {size} bytes")
    header = _header(kek.keyring_id, version, size)
    wrapped = kek.wrap(dek, header, version)
    if len(wrapped) != size:
        raise CryptoError("the key-encryption backend returned a malformed wrapped key")
    return header + wrapped + bulk


def _header(keyring_id: str, version: int, wrapped_len: int) -> bytes:
    try:
        raw_id = bytes.fromhex(keyring_id)
    except ValueError:
        raw_id = b""
    # bytes.fromhex skips spaces and struct would zero-pad a short id: check exactly.
    if len(raw_id) != 16 or raw_id.hex() != keyring_id:
        raise CryptoError("a keyring id is 32 lowercase hex digits")
    if not 0 < version < 2**32:
        raise CryptoError(f"KEK version {version} does not fit the header (uint32)")
    return _PREFIX.pack(_MAGIC, raw_id, version, wrapped_len)


def _unwrap(kek: KeyEncryptionKey, blob: bytes, header: SealedHeader) -> bytes:
    if header.keyring_id != kek.keyring_id:
        raise UnknownKeyVersionError(
            f"sealed with keyring {header.keyring_id}, not this keyring ({kek.keyring_id})"
        )
    if not kek.has_version(header.kek_version):
        raise UnknownKeyVersionError(
            f"sealed with KEK version {header.kek_version}, which this keyring does not hold; "
            f"it was rotated on another host: run `interlock keyring export-version "
            f"{header.kek_version}` there and `interlock keyring import-version` here "
            "(docs/scale.md)"
        )
    dek = kek.unwrap(header.wrapped_key, blob[: _PREFIX.size], header.kek_version)
    if len(dek) != aead.KEY_SIZE:
        raise DecryptionError(_FAILED)
    return dek


def _bulk_aad(aad: bytes) -> bytes:
    return _MAGIC + struct.pack(">Q", len(aad)) + aad
