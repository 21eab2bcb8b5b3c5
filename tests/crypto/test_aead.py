"""The AEAD primitive: Wycheproof AES-GCM vectors, and our narrower policy."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from interlock.crypto import aead
from interlock.errors import DecryptionError
from tests.crypto.vectors import AeadVector, aead_vectors


def _in_policy(v: AeadVector) -> bool:
    return len(v.key) == 32 and len(v.iv) == 12 and v.tag_size == 128


def _refused(v: AeadVector) -> bool:
    try:
        aead.decrypt(v.key, v.iv, v.ct + v.tag, v.aad)
    except DecryptionError:
        return True
    return False


def test_wycheproof_vectors_in_policy_behave_exactly() -> None:
    """AES-256-GCM/96/128: every valid vector round-trips, every invalid one is refused."""
    vectors = [v for v in aead_vectors("aes_gcm_test.json") if _in_policy(v)]
    valid = [v for v in vectors if v.result == "valid"]
    invalid = [v for v in vectors if v.result == "invalid"]
    assert len(valid) >= 30
    assert len(invalid) >= 20
    for v in valid:
        assert aead.decrypt(v.key, v.iv, v.ct + v.tag, v.aad) == v.msg, v.tc_id
        assert aead.encrypt(v.key, v.iv, v.msg, v.aad) == v.ct + v.tag, v.tc_id
    for v in invalid:
        assert _refused(v), f"tcId {v.tc_id} was accepted"


def test_wycheproof_vectors_outside_policy_are_refused() -> None:
    """128/192-bit keys and non-96-bit nonces are refused by policy, even when valid GCM."""
    outside = [v for v in aead_vectors("aes_gcm_test.json") if not _in_policy(v)]
    assert len(outside) >= 100
    for v in outside:
        assert _refused(v), f"tcId {v.tc_id} was accepted despite the policy"


def test_wycheproof_vectors_through_the_underlying_library() -> None:
    """The library primitive under our wrapper gets every vector it accepts right.

    It refuses nonces outside 8..128 bytes outright, which is a refusal too.
    """
    checked = 0
    for v in aead_vectors("aes_gcm_test.json"):
        if not 8 <= len(v.iv) <= 128:
            continue
        cipher = AESGCM(v.key)
        if v.result == "valid":
            assert cipher.decrypt(v.iv, v.ct + v.tag, v.aad) == v.msg, v.tc_id
        elif v.result == "invalid":
            with pytest.raises(InvalidTag):
                cipher.decrypt(v.iv, v.ct + v.tag, v.aad)
        checked += 1
    assert checked >= 200


@pytest.mark.parametrize(("key_len", "nonce_len"), [(16, 12), (24, 12), (32, 16), (32, 8), (0, 12)])
def test_wrong_key_or_nonce_sizes_are_refused_on_encrypt(key_len: int, nonce_len: int) -> None:
    """Encrypting with parameters outside the policy fails before any output."""
    with pytest.raises(DecryptionError):
        aead.encrypt(b"k" * key_len, b"n" * nonce_len, b"data", b"")


def test_ciphertext_shorter_than_a_tag_is_refused() -> None:
    """A truncated ciphertext is refused with the opaque error."""
    with pytest.raises(DecryptionError, match="decryption failed"):
        aead.decrypt(aead.new_key(), aead.new_nonce(), b"short", b"")


def test_fresh_keys_and_nonces_have_policy_sizes_and_differ() -> None:
    """Keys are 256 bits and nonces 96 bits, random each time."""
    keys = {aead.new_key() for _ in range(64)}
    nonces = {aead.new_nonce() for _ in range(64)}
    assert len(keys) == len(nonces) == 64
    assert {len(k) for k in keys} == {32}
    assert {len(n) for n in nonces} == {12}
