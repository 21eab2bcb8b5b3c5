"""Envelope encryption: round trips, tamper evidence, rotation and re-wrap."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock.crypto import Keyring, inspect_unverified, needs_rewrap, rewrap
from interlock.errors import DecryptionError, UnknownKeyVersionError


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    """A fresh keyring in a temporary directory."""
    return Keyring.create(tmp_path / "keyring.json")


def test_seal_and_open_round_trip(keyring: Keyring) -> None:
    """What is sealed with an AAD opens with the same AAD."""
    blob = keyring.seal(b"order 42: alice@example.com", b"orders/42")
    assert keyring.open(blob, b"orders/42") == b"order 42: alice@example.com"
    assert b"alice" not in blob


def test_every_seal_uses_a_fresh_data_key_and_nonce(keyring: Keyring) -> None:
    """Sealing the same plaintext twice gives unrelated blobs."""
    first, second = keyring.seal(b"same", b"a"), keyring.seal(b"same", b"a")
    assert first != second
    assert inspect_unverified(first).wrapped_key != inspect_unverified(second).wrapped_key


def test_header_names_keyring_and_version(keyring: Keyring) -> None:
    """Every blob carries its keyring id and KEK version (rotation is built in)."""
    header = inspect_unverified(keyring.seal(b"x", b""))
    assert (header.keyring_id, header.kek_version) == (keyring.keyring_id, 1)


def test_any_changed_byte_is_refused(keyring: Keyring) -> None:
    """Flipping any single bit of any byte makes the blob unopenable."""
    blob = keyring.seal(b"payload", b"aad")
    for index in range(len(blob)):
        tampered = bytearray(blob)
        tampered[index] ^= 0x01
        with pytest.raises(DecryptionError):
            keyring.open(bytes(tampered), b"aad")


def test_truncated_or_extended_blobs_are_refused(keyring: Keyring) -> None:
    """Cutting or appending bytes is detected."""
    blob = keyring.seal(b"payload", b"aad")
    for cut in (0, 1, 4, 25, 26, len(blob) // 2, len(blob) - 1):
        with pytest.raises(DecryptionError):
            keyring.open(blob[:cut], b"aad")
    with pytest.raises(DecryptionError):
        keyring.open(blob + b"\x00", b"aad")


def test_wrong_or_swapped_aad_is_refused(keyring: Keyring) -> None:
    """A record moved to another identity (its AAD) does not open there."""
    a, b = keyring.seal(b"for a", b"row/a"), keyring.seal(b"for b", b"row/b")
    for blob, aad in ((a, b"row/b"), (b, b"row/a"), (a, b""), (a, b"row/a\x00")):
        with pytest.raises(DecryptionError, match="decryption failed"):
            keyring.open(blob, aad)


def test_a_blob_from_another_keyring_is_refused_clearly(keyring: Keyring, tmp_path: Path) -> None:
    """Another deployment's blob names its keyring; the error says so."""
    other = Keyring.create(tmp_path / "other.json")
    with pytest.raises(UnknownKeyVersionError, match="not this keyring"):
        keyring.open(other.seal(b"x", b""), b"")


def test_an_unknown_kek_version_is_refused_clearly(keyring: Keyring, tmp_path: Path) -> None:
    """A blob sealed after a rotation this keyring file does not have is named by version."""
    blob = keyring.seal(b"x", b"")
    forged_version = blob[:20] + (99).to_bytes(4, "big") + blob[24:]
    with pytest.raises(UnknownKeyVersionError, match="version 99"):
        keyring.open(forged_version, b"")


def test_rotation_keeps_old_blobs_openable_and_seals_with_the_new_version(
    keyring: Keyring,
) -> None:
    """After rotate, new blobs use v2 and v1 blobs still open."""
    old = keyring.seal(b"old", b"r")
    keyring.rotate()
    new = keyring.seal(b"new", b"r")
    assert inspect_unverified(new).kek_version == 2
    assert keyring.open(old, b"r") == b"old"
    assert needs_rewrap(keyring, old)
    assert not needs_rewrap(keyring, new)


def test_rewrap_keeps_the_bulk_ciphertext_byte_for_byte(keyring: Keyring) -> None:
    """Re-wrapping changes only the wrapped data key, not the encrypted data."""
    blob = keyring.seal(b"bulk data" * 100, b"r")
    keyring.rotate()
    moved = rewrap(keyring, blob)
    before, after = inspect_unverified(blob), inspect_unverified(moved)
    assert after.kek_version == 2
    assert after.bulk == before.bulk
    assert after.wrapped_key != before.wrapped_key
    assert keyring.open(moved, b"r") == b"bulk data" * 100


def test_rewrap_refuses_a_tampered_blob(keyring: Keyring) -> None:
    """Re-wrap authenticates the old wrapping first: it cannot launder a forgery."""
    blob = bytearray(keyring.seal(b"x", b"r"))
    blob[30] ^= 0xFF
    keyring.rotate()
    with pytest.raises(DecryptionError):
        rewrap(keyring, bytes(blob))


def test_another_process_rotation_is_picked_up(keyring: Keyring) -> None:
    """A handle loaded before a rotation elsewhere still opens blobs of the new version."""
    stale = Keyring.load(keyring.path)
    keyring.rotate()
    blob = keyring.seal(b"fresh", b"")
    assert stale.open(blob, b"") == b"fresh"
    assert stale.current_version == 2


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plaintext=st.binary(max_size=2048), aad=st.binary(max_size=256))
def test_round_trip_for_any_bytes(keyring: Keyring, plaintext: bytes, aad: bytes) -> None:
    """seal/open is the identity for arbitrary plaintext and associated data."""
    assert keyring.open(keyring.seal(plaintext, aad), aad) == plaintext


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(max_size=512), keep_header=st.booleans())
def test_arbitrary_bytes_never_open(keyring: Keyring, garbage: bytes, keep_header: bool) -> None:
    """Random input, with or without a genuine header, is refused with DecryptionError only."""
    prefix = keyring.seal(b"", b"")[:26] if keep_header else b""
    with pytest.raises(DecryptionError):
        keyring.open(prefix + garbage, b"")
