"""The AEAD primitive: Wycheproof AES-GCM vectors, and our narrower policy."""

from __future__ import annotations

import pytest

from interlock.crypto import aead
from interlock.errors import CryptoError, DecryptionError
from tests.crypto.vectors import AeadVector, aead_vectors

_GCM = "aes_gcm_test.json"


def _in_policy(v: AeadVector) -> bool:
    return (v.key_size, v.iv_size, v.tag_size) == (256, 96, 128)


def _refused_on_decrypt(v: AeadVector) -> bool:
    try:
        aead.decrypt(v.key, v.iv, v.ct + v.tag, v.aad)
    except DecryptionError:
        return True
    return False


def test_wycheproof_valid_vectors_in_policy_decrypt_and_encrypt_exactly() -> None:
    """Every valid AES-256-GCM/96/128 vector decrypts to msg, and encrypt gives ct || tag."""
    valid = [v for v in aead_vectors(_GCM) if _in_policy(v) and v.result == "valid"]
    wrong = [
        f"tcId {v.tc_id}"
        for v in valid
        if aead.decrypt(v.key, v.iv, v.ct + v.tag, v.aad) != v.msg
        or aead.encrypt(v.key, v.iv, v.msg, v.aad) != v.ct + v.tag
    ]
    assert len(valid) > 0, "no in-policy valid vectors: the test would pass vacuously"
    assert wrong == [], f"valid vectors mishandled: {', '.join(wrong)}"


def test_wycheproof_invalid_vectors_in_policy_are_refused() -> None:
    """Every invalid AES-256-GCM/96/128 vector (modified tags, ...) is refused."""
    invalid = [v for v in aead_vectors(_GCM) if _in_policy(v) and v.result == "invalid"]
    accepted = [f"tcId {v.tc_id}" for v in invalid if not _refused_on_decrypt(v)]
    assert len(invalid) > 0, "no in-policy invalid vectors: the test would pass vacuously"
    assert accepted == [], f"invalid vectors accepted: {', '.join(accepted)}"


def test_wycheproof_aes_gcm_has_no_acceptable_vectors_left_unchecked() -> None:
    """Every vector is 'valid' or 'invalid', and both tests above check those.

    This file has no 'acceptable' vectors (a loop over them checked nothing); a
    later Wycheproof release that adds some fails here until they get a test.
    """
    results = {v.result for v in aead_vectors(_GCM)}
    assert results == {"valid", "invalid"}
    # The policy filter keeps both kinds, so neither test above loops over nothing.
    assert {v.result for v in aead_vectors(_GCM) if _in_policy(v)} == {"valid", "invalid"}


def test_wycheproof_vectors_outside_policy_are_refused() -> None:
    """128/192-bit keys and non-96-bit nonces are refused by policy, even when valid GCM.

    Decrypting gives the opaque DecryptionError; encrypting with such a key or
    nonce is a programming error (CryptoError) and produces nothing.
    """
    outside = [v for v in aead_vectors(_GCM) if not _in_policy(v)]
    accepted = [f"tcId {v.tc_id}" for v in outside if not _refused_on_decrypt(v)]
    encrypted = []
    for v in outside:
        if (v.key_size, v.iv_size) != (256, 96):
            try:
                aead.encrypt(v.key, v.iv, v.msg, v.aad)
            except CryptoError:
                continue
            encrypted.append(f"tcId {v.tc_id}")
    assert len(outside) > 0, "no out-of-policy vectors: the test would pass vacuously"
    assert accepted == [], f"decrypted despite the policy: {', '.join(accepted)}"
    assert encrypted == [], f"encrypted despite the policy: {', '.join(encrypted)}"


@pytest.mark.parametrize(("key_len", "nonce_len"), [(16, 12), (24, 12), (32, 16), (32, 8), (0, 12)])
def test_wrong_key_or_nonce_sizes_are_refused_on_encrypt(key_len: int, nonce_len: int) -> None:
    """Encrypting with parameters outside the policy fails before any output."""
    with pytest.raises(CryptoError, match="AES-256-GCM"):
        aead.encrypt(b"k" * key_len, b"n" * nonce_len, b"data", b"")


def test_a_key_given_as_text_is_refused() -> None:
    """A 32-character str is not a 256-bit key, even though its length matches."""
    with pytest.raises(CryptoError):
        aead.encrypt("k" * 32, aead.new_nonce(), b"data", b"")  # type: ignore[arg-type]
    with pytest.raises(DecryptionError):
        aead.decrypt("k" * 32, aead.new_nonce(), b"x" * 32, b"")  # type: ignore[arg-type]


def test_ciphertext_shorter_than_a_tag_is_refused() -> None:
    """A ciphertext too short to hold a 128-bit tag is refused with the opaque error."""
    with pytest.raises(DecryptionError, match="decryption failed"):
        aead.decrypt(aead.new_key(), aead.new_nonce(), b"short", b"")


def test_a_truncated_tag_never_verifies() -> None:
    """Cutting the tag to 96 bits (GCM allows it; we do not) makes decryption fail."""
    key, nonce = aead.new_key(), aead.new_nonce()
    sealed = aead.encrypt(key, nonce, b"message", b"aad")
    with pytest.raises(DecryptionError):
        aead.decrypt(key, nonce, sealed[:-4], b"aad")


def test_wrong_aad_is_refused_with_the_same_message_as_a_wrong_tag() -> None:
    """A caller cannot tell a wrong AAD from a forged tag: one message for both."""
    key, nonce = aead.new_key(), aead.new_nonce()
    sealed = aead.encrypt(key, nonce, b"message", b"aad")
    forged = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(DecryptionError) as wrong_aad:
        aead.decrypt(key, nonce, sealed, b"other")
    with pytest.raises(DecryptionError) as wrong_tag:
        aead.decrypt(key, nonce, forged, b"aad")
    assert str(wrong_aad.value) == str(wrong_tag.value) == aead.DECRYPTION_FAILED


def test_fresh_keys_and_nonces_have_policy_sizes_and_differ() -> None:
    """Keys are 256 bits and nonces 96 bits, random each time."""
    keys = {aead.new_key() for _ in range(64)}
    nonces = {aead.new_nonce() for _ in range(64)}
    assert len(keys) == len(nonces) == 64
    assert {len(k) for k in keys} == {32}
    assert {len(n) for n in nonces} == {12}
