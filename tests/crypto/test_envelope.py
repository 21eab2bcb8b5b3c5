"""Envelope encryption: layout, round trips, tamper evidence, rotation and re-wrap."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock.crypto import (
    MAX_BLOB,
    MAX_PLAINTEXT,
    Keyring,
    aead,
    inspect_unverified,
    needs_rewrap,
    open_sealed,
    rewrap,
    seal,
)
from interlock.errors import CryptoError, DecryptionError, UnknownKeyVersionError

_OPAQUE = "decryption failed: the sealed data was altered or the associated data does not match"


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    """A fresh keyring in a temporary directory."""
    return Keyring.create(tmp_path / "keyring.json")


class _PrefixedKek:
    """A stand-in for another backend (an HSM): a 64-byte wrapping with a handle prefix."""

    def __init__(self) -> None:
        self.keyring_id = "0f" * 16
        self.current_version = 7
        self.wrapped_size = 4 + 60
        self._key = aead.new_key()

    def has_version(self, version: int) -> bool:
        return version == 7

    def wrap(self, dek: bytes, aad: bytes, version: int) -> bytes:
        nonce = aead.new_nonce()
        return b"HSM1" + nonce + aead.encrypt(self._key, nonce, dek, aad)

    def unwrap(self, wrapped: bytes, aad: bytes, version: int) -> bytes:
        return aead.decrypt(self._key, wrapped[4:16], wrapped[16:], aad)


def test_seal_and_open_round_trip(keyring: Keyring) -> None:
    """What is sealed with an AAD opens with the same AAD; the plaintext is not visible."""
    blob = keyring.seal(b"order 42: alice@example.com", b"orders/42")
    assert keyring.open(blob, b"orders/42") == b"order 42: alice@example.com"
    assert open_sealed(keyring, seal(keyring, b"x", b"a"), b"a") == b"x"
    assert b"alice" not in blob


def test_blob_layout_matches_the_documented_offsets(keyring: Keyring) -> None:
    """magic+format | keyring id | KEK version | L | wrapped key | bulk nonce | ct || tag."""
    blob = keyring.seal(b"seven b", b"aad")
    assert blob[0:4] == b"ILK\x01"
    assert blob[4:20] == bytes.fromhex(keyring.keyring_id)
    assert struct.unpack(">I", blob[20:24]) == (1,)
    assert struct.unpack(">H", blob[24:26]) == (60,)
    assert len(blob) == 26 + 60 + 12 + 7 + 16
    parts = inspect_unverified(blob)
    assert parts.wrapped_key == blob[26:86]
    assert parts.bulk == blob[86:]


def test_every_seal_uses_a_fresh_data_key_and_nonce(keyring: Keyring) -> None:
    """Sealing the same plaintext twice gives unrelated wrapped keys and bulks."""
    first, second = (
        inspect_unverified(keyring.seal(b"same", b"a")),
        inspect_unverified(keyring.seal(b"same", b"a")),
    )
    assert first.wrapped_key != second.wrapped_key
    assert first.bulk != second.bulk


def test_any_changed_bit_is_refused(keyring: Keyring) -> None:
    """Flipping any single bit of any byte, header included, makes the blob unopenable."""
    blob = keyring.seal(b"payload", b"aad")
    for index in range(len(blob)):
        for bit in range(8):
            tampered = bytearray(blob)
            tampered[index] ^= 1 << bit
            with pytest.raises(DecryptionError):
                keyring.open(bytes(tampered), b"aad")


def test_truncated_or_extended_blobs_are_refused(keyring: Keyring) -> None:
    """Cutting the blob anywhere, or appending to it, is detected."""
    blob = keyring.seal(b"payload", b"aad")
    for cut in range(len(blob)):
        with pytest.raises(DecryptionError):
            keyring.open(blob[:cut], b"aad")
    with pytest.raises(DecryptionError):
        keyring.open(blob + b"\x00", b"aad")


def test_failures_are_opaque(keyring: Keyring) -> None:
    """A wrong AAD, a forged tag and a wrong magic all give one and the same message."""
    blob = keyring.seal(b"payload", b"aad")
    attempts = [
        (blob, b"other"),
        (blob[:-1] + bytes([blob[-1] ^ 1]), b"aad"),
        (b"XXX" + blob[3:], b"aad"),
        (blob[:3] + b"\x02" + blob[4:], b"aad"),
    ]
    for candidate, aad in attempts:
        with pytest.raises(DecryptionError) as caught:
            keyring.open(candidate, aad)
        assert type(caught.value) is DecryptionError
        assert str(caught.value) == _OPAQUE


def test_wrong_or_swapped_aad_is_refused(keyring: Keyring) -> None:
    """A record moved to another identity (its AAD) does not open there."""
    a, b = keyring.seal(b"for a", b"row/a"), keyring.seal(b"for b", b"row/b")
    for blob, aad in ((a, b"row/b"), (b, b"row/a"), (a, b""), (a, b"row/a\x00")):
        with pytest.raises(DecryptionError, match="decryption failed"):
            keyring.open(blob, aad)


def test_a_bulk_moved_under_another_wrapped_key_is_refused(keyring: Keyring) -> None:
    """Splicing one record's header onto another's bulk does not open either way."""
    a, b = keyring.seal(b"for a", b"row"), keyring.seal(b"for b", b"row")
    with pytest.raises(DecryptionError):
        keyring.open(a[:86] + b[86:], b"row")


def test_a_blob_from_another_keyring_is_refused_clearly(keyring: Keyring, tmp_path: Path) -> None:
    """Another deployment's blob names its keyring; the error says so."""
    other = Keyring.create(tmp_path / "other.json")
    with pytest.raises(UnknownKeyVersionError, match=f"keyring {other.keyring_id}, not this"):
        keyring.open(other.seal(b"x", b""), b"")
    with pytest.raises(UnknownKeyVersionError):
        rewrap(keyring, other.seal(b"x", b""))


def test_an_unknown_kek_version_is_refused_clearly(keyring: Keyring) -> None:
    """A blob naming KEK version 99, which the file lacks, is refused naming the version."""
    blob = keyring.seal(b"x", b"")
    forged_version = blob[:20] + (99).to_bytes(4, "big") + blob[24:]
    with pytest.raises(UnknownKeyVersionError, match="KEK version 99"):
        keyring.open(forged_version, b"")


def test_a_key_file_restored_from_before_a_rotation_names_the_missing_version(
    tmp_path: Path,
) -> None:
    """A backup older than a rotation cannot open newer blobs, and says which version is missing."""
    path, backup = tmp_path / "keyring.json", tmp_path / "backup.json"
    keyring = Keyring.create(path)
    shutil.copy2(path, backup)
    keyring.rotate()
    blob = keyring.seal(b"after rotation", b"")
    with pytest.raises(UnknownKeyVersionError, match="KEK version 2"):
        Keyring.load(backup).open(blob, b"")


def test_rotation_keeps_old_blobs_openable_and_seals_with_the_new_version(
    keyring: Keyring,
) -> None:
    """After rotate, new blobs use v2 and v1 blobs still open."""
    old = keyring.seal(b"old", b"r")
    keyring.rotate()
    new = keyring.seal(b"new", b"r")
    assert inspect_unverified(old).kek_version == 1
    assert inspect_unverified(new).kek_version == 2
    assert keyring.open(old, b"r") == b"old"
    assert keyring.open(new, b"r") == b"new"
    assert needs_rewrap(keyring, old)
    assert not needs_rewrap(keyring, new)


def test_rotation_is_seen_by_a_reloaded_keyring(keyring: Keyring) -> None:
    """Blobs of both versions open with a handle loaded from disk after the rotation."""
    old = keyring.seal(b"old", b"r")
    keyring.rotate()
    new = keyring.seal(b"new", b"r")
    reloaded = Keyring.load(keyring.path)
    assert (reloaded.open(old, b"r"), reloaded.open(new, b"r")) == (b"old", b"new")


def test_rewrap_keeps_the_bulk_ciphertext_byte_for_byte(keyring: Keyring) -> None:
    """Re-wrapping replaces version and wrapped key only; the encrypted data is identical."""
    blob = keyring.seal(b"bulk data" * 100, b"r")
    keyring.rotate()
    moved = rewrap(keyring, blob)  # no AAD needed
    assert len(moved) == len(blob)
    assert moved[:20] == blob[:20]  # magic, format, keyring id
    assert struct.unpack(">I", moved[20:24]) == (2,)
    assert moved[26:86] != blob[26:86]  # a new wrapping
    assert moved[86:] == blob[86:]  # bulk nonce, ciphertext and tag
    assert not needs_rewrap(keyring, moved)
    assert keyring.open(moved, b"r") == b"bulk data" * 100


def test_rewrap_refuses_a_tampered_wrapping(keyring: Keyring) -> None:
    """Re-wrap authenticates the old wrapping first: it cannot launder a forgery."""
    blob = bytearray(keyring.seal(b"x", b"r"))
    blob[30] ^= 0xFF
    keyring.rotate()
    with pytest.raises(DecryptionError):
        rewrap(keyring, bytes(blob))


def test_a_tampered_bulk_stays_unopenable_after_rewrap(keyring: Keyring) -> None:
    """Re-wrap cannot check the bulk without the AAD, but open still refuses it."""
    blob = bytearray(keyring.seal(b"x", b"r"))
    blob[-1] ^= 0x01
    keyring.rotate()
    with pytest.raises(DecryptionError):
        keyring.open(rewrap(keyring, bytes(blob)), b"r")


def test_another_process_rotation_is_picked_up(keyring: Keyring) -> None:
    """A handle loaded before a rotation elsewhere still opens blobs of the new version."""
    stale = Keyring.load(keyring.path)
    keyring.rotate()
    blob = keyring.seal(b"fresh", b"")
    assert stale.open(blob, b"") == b"fresh"
    assert stale.current_version == 2


def test_needs_rewrap_refuses_a_malformed_blob(keyring: Keyring) -> None:
    """Even the header-only check does not accept garbage."""
    with pytest.raises(DecryptionError):
        needs_rewrap(keyring, b"not a sealed blob at all, just text")


def test_a_plaintext_over_the_cap_is_refused(keyring: Keyring) -> None:
    """seal refuses more than MAX_PLAINTEXT bytes with a CryptoError, before encrypting."""
    with pytest.raises(CryptoError, match="cannot be sealed"):
        keyring.seal(bytes(MAX_PLAINTEXT + 1), b"")


def test_a_blob_over_the_cap_is_refused_before_parsing(keyring: Keyring) -> None:
    """An oversized blob is refused opaquely, whatever its header says."""
    header = keyring.seal(b"", b"")[:86]
    with pytest.raises(DecryptionError, match="decryption failed"):
        keyring.open(header + bytes(MAX_BLOB), b"")


def test_any_kek_backend_works_through_the_protocol() -> None:
    """The envelope depends only on KeyEncryptionKey: an HSM-like backend with its own size."""
    kek = _PrefixedKek()
    blob = seal(kek, b"sealed by an HSM", b"r")
    assert struct.unpack(">IH", blob[20:26]) == (7, 64)
    assert open_sealed(kek, blob, b"r") == b"sealed by an HSM"
    assert rewrap(kek, blob)[90:] == blob[90:]


def test_a_backend_returning_a_wrong_sized_wrapping_is_refused() -> None:
    """A misbehaving backend cannot produce a blob whose L field lies."""
    kek = _PrefixedKek()
    kek.wrapped_size = 60
    with pytest.raises(CryptoError, match="malformed wrapped key"):
        seal(kek, b"x", b"")


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plaintext=st.binary(max_size=2048), aad=st.binary(max_size=256))
def test_round_trip_for_any_bytes(keyring: Keyring, plaintext: bytes, aad: bytes) -> None:
    """seal/open is the identity for arbitrary plaintext and associated data."""
    assert keyring.open(keyring.seal(plaintext, aad), aad) == plaintext


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(aad=st.binary(max_size=64), other=st.binary(max_size=64))
def test_any_other_aad_is_refused(keyring: Keyring, aad: bytes, other: bytes) -> None:
    """No AAD but the sealing one opens the blob (the length prefix leaves no ambiguity)."""
    blob = keyring.seal(b"payload", aad)
    if other != aad:
        with pytest.raises(DecryptionError):
            keyring.open(blob, other)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(max_size=512), keep_header=st.booleans())
def test_arbitrary_bytes_never_open(keyring: Keyring, garbage: bytes, keep_header: bool) -> None:
    """Random input, with or without a genuine header, is refused with DecryptionError only."""
    prefix = keyring.seal(b"", b"")[:26] if keep_header else b""
    with pytest.raises(DecryptionError):
        keyring.open(prefix + garbage, b"")
