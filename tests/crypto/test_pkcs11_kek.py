"""The PKCS#11 keyring backend on SoftHSM2: sealing, key attributes, rotation, failing closed."""

from __future__ import annotations

import copy
import pickle
import threading
from pathlib import Path

import pkcs11
import pytest
from pkcs11 import Attribute, ObjectClass

from interlock.crypto import Keyring, inspect_unverified
from interlock.crypto.pkcs11_kek import Pkcs11Config, kek_label
from interlock.errors import DecryptionError, KeyFileError, KeyringError, UnknownKeyVersionError
from interlock.testing.softhsm import SoftHsm

TOKEN = "interlock-a"


@pytest.fixture(scope="module")
def keyring(softhsm: SoftHsm) -> Keyring:
    """A keyring whose KEK version 1 was generated in the token, shared by tests that do not
    change it (SoftHSM2 takes a second or two to store a new key on a busy machine)."""
    return Keyring.create_pkcs11(softhsm.config(TOKEN))


@pytest.fixture
def fresh(softhsm: SoftHsm) -> Keyring:
    """A keyring of this test's own, for tests that add versions."""
    return Keyring.create_pkcs11(softhsm.config(TOKEN))


def _pin(softhsm: SoftHsm, token: str = TOKEN) -> str:
    return softhsm.pin_file(token).read_text().strip()


def _token_keys(softhsm: SoftHsm, label: str) -> list[pkcs11.SecretKey]:
    token = pkcs11.lib(str(softhsm.module)).get_token(token_label=TOKEN)
    session = token.open(rw=True)  # shares the login of the keyring's session
    query = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}
    return [key for key in session.get_objects(query) if isinstance(key, pkcs11.SecretKey)]


def test_seal_and_open_round_trip_through_the_token(keyring: Keyring) -> None:
    """A blob sealed under the HSM opens with the same associated data, and only with it."""
    blob = keyring.seal(b"erp password", b"secrets/erp/1")
    assert keyring.backend == "pkcs11"
    assert keyring.wrapped_size == 60
    header = inspect_unverified(blob)
    assert (header.keyring_id, header.kek_version) == (keyring.keyring_id, 1)
    assert keyring.open(blob, b"secrets/erp/1") == b"erp password"
    with pytest.raises(DecryptionError):
        keyring.open(blob, b"secrets/erp/2")


def test_the_kek_is_generated_unextractable_in_the_token(
    softhsm: SoftHsm, keyring: Keyring
) -> None:
    """CKA_EXTRACTABLE false, sensitive since birth, and reading CKA_VALUE is refused."""
    (key,) = _token_keys(softhsm, kek_label(keyring.keyring_id, 1))
    assert key[Attribute.TOKEN] is True
    assert key[Attribute.EXTRACTABLE] is False
    assert key[Attribute.NEVER_EXTRACTABLE] is True
    assert key[Attribute.SENSITIVE] is True
    assert key[Attribute.ALWAYS_SENSITIVE] is True
    assert key[Attribute.WRAP] is False
    assert key.key_length == 256
    with pytest.raises(pkcs11.exceptions.AttributeSensitive):
        key[Attribute.VALUE]


def test_a_blob_opens_only_with_the_keyring_that_sealed_it(
    tmp_path: Path, softhsm: SoftHsm, keyring: Keyring
) -> None:
    """Another HSM keyring on the same token, or a file keyring, cannot open it."""
    blob = keyring.seal(b"value", b"aad")
    other = Keyring.create_pkcs11(softhsm.config(TOKEN))
    file_keyring = Keyring.create(tmp_path / "keyring.json")
    for stranger in (other, file_keyring):
        with pytest.raises(UnknownKeyVersionError):
            stranger.open(blob, b"aad")
    tampered = bytearray(blob)
    tampered[30] ^= 1  # inside the wrapped data key
    with pytest.raises(DecryptionError):
        keyring.open(bytes(tampered), b"aad")


def test_a_new_handle_finds_the_keyring_on_the_token(softhsm: SoftHsm, keyring: Keyring) -> None:
    """Versions are discovered from the token's labels; an unknown id fails closed."""
    blob = keyring.seal(b"value", b"aad")
    reopened = Keyring.open_pkcs11(softhsm.config(TOKEN), keyring.keyring_id)
    assert reopened.versions == (1,)
    assert reopened.open(blob, b"aad") == b"value"
    with pytest.raises(KeyringError, match=r"holds no KEK of keyring 0{32}"):
        Keyring.open_pkcs11(softhsm.config(TOKEN), "0" * 32)


def test_rotation_adds_a_version_in_the_token_and_old_blobs_still_open(
    softhsm: SoftHsm, fresh: Keyring
) -> None:
    """rotate() generates v2 in the token; v1 blobs open; other handles see v2 on demand."""
    other_process = Keyring.open_pkcs11(softhsm.config(TOKEN), fresh.keyring_id)
    old = fresh.seal(b"old", b"aad")
    assert fresh.rotate() == 2
    assert (fresh.versions, fresh.current_version) == ((1, 2), 2)
    new = fresh.seal(b"new", b"aad")
    assert inspect_unverified(new).kek_version == 2
    assert fresh.open(old, b"aad") == b"old"
    # A handle opened before the rotation re-reads the token for the newer version.
    assert other_process.current_version == 1
    assert other_process.open(new, b"aad") == b"new"
    assert other_process.current_version == 2
    (key,) = _token_keys(softhsm, kek_label(fresh.keyring_id, 2))
    assert key[Attribute.EXTRACTABLE] is False


def test_the_session_is_reopened_after_it_is_lost(softhsm: SoftHsm, keyring: Keyring) -> None:
    """A closed session (HSM restart, network HSM failover) is reopened once, transparently."""
    blob = keyring.seal(b"value", b"aad")
    # C_Finalize then C_Initialize: every session and the login are gone, as after
    # an HSM restart; the handle logs in again with the PIN from its file.
    pkcs11.lib(str(softhsm.module)).reinitialize()
    assert keyring.open(blob, b"aad") == b"value"
    assert keyring.open(keyring.seal(b"again", b"aad"), b"aad") == b"again"


def test_threads_share_one_handle(keyring: Keyring) -> None:
    """The gateway seals and opens from many threads at once."""
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                aad = f"{n}/{i}".encode()
                assert keyring.open(keyring.seal(aad, aad), aad) == aad
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_the_handle_cannot_be_pickled_copied_or_shown(keyring: Keyring) -> None:
    """The same no-export guarantees as the file keyring."""
    with pytest.raises(TypeError):
        pickle.dumps(keyring)
    with pytest.raises(TypeError):
        copy.copy(keyring)
    with pytest.raises(TypeError):
        copy.deepcopy(keyring)
    assert "backend=pkcs11" in repr(keyring)
    assert TOKEN in keyring.describe()
    with pytest.raises(KeyringError, match="in an HSM"):
        _ = keyring.path


def test_a_wrong_pin_fails_closed_with_one_line(tmp_path: Path, softhsm: SoftHsm) -> None:
    """The token's refusal names the PIN file, never the PIN."""
    wrong = tmp_path / "wrong.pin"
    wrong.write_text("not-the-pin\n")
    wrong.chmod(0o600)
    config = Pkcs11Config(softhsm.module, "interlock-spare", wrong)
    with pytest.raises(KeyringError) as caught:
        Keyring.create_pkcs11(config)
    message = str(caught.value)
    assert message == f"token 'interlock-spare' refused the PIN from {wrong} (wrong PIN)"
    assert "not-the-pin" not in message
    assert _pin(softhsm, "interlock-spare") not in message


def test_a_missing_token_or_module_fails_closed(softhsm: SoftHsm) -> None:
    """Each names the setting to fix, on one line."""
    missing_token = Pkcs11Config(softhsm.module, "no-such-token", softhsm.pin_file(TOKEN))
    with pytest.raises(KeyringError, match=r"^no token labelled 'no-such-token' in PKCS#11"):
        Keyring.create_pkcs11(missing_token)
    missing_module = Pkcs11Config(Path("/nonexistent/p11.so"), TOKEN, softhsm.pin_file(TOKEN))
    with pytest.raises(
        KeyringError, match=r"^PKCS#11 module /nonexistent/p11\.so cannot be loaded"
    ) as caught:
        Keyring.create_pkcs11(missing_module)
    assert "\n" not in str(caught.value)


def test_the_pin_file_must_be_private(tmp_path: Path, softhsm: SoftHsm) -> None:
    """Group- or other-readable PIN files and symbolic links are refused, as key files are."""
    loose = tmp_path / "loose.pin"
    loose.write_text(_pin(softhsm))
    loose.chmod(0o640)
    with pytest.raises(KeyFileError, match="PIN file is accessible by group or others"):
        Keyring.create_pkcs11(Pkcs11Config(softhsm.module, TOKEN, loose))
    link = tmp_path / "link.pin"
    link.symlink_to(softhsm.pin_file(TOKEN))
    with pytest.raises(KeyFileError, match="PIN file is a symbolic link"):
        Keyring.create_pkcs11(Pkcs11Config(softhsm.module, TOKEN, link))
    with pytest.raises(KeyFileError, match="no PIN file there"):
        Keyring.create_pkcs11(Pkcs11Config(softhsm.module, TOKEN, tmp_path / "absent.pin"))


def test_an_extractable_key_under_our_label_is_refused(softhsm: SoftHsm, fresh: Keyring) -> None:
    """A key planted as the next version, but exportable, would expose data keys: refused."""
    token = pkcs11.lib(str(softhsm.module)).get_token(token_label=TOKEN)
    session = token.open(rw=True)
    session.generate_key(
        pkcs11.KeyType.AES,
        256,
        label=kek_label(fresh.keyring_id, 2),
        store=True,
        template={Attribute.EXTRACTABLE: True, Attribute.SENSITIVE: False},
    )
    with pytest.raises(KeyringError, match="could be exported"):
        Keyring.open_pkcs11(softhsm.config(TOKEN), fresh.keyring_id)


def _plant(softhsm: SoftHsm, label: str, how: str) -> None:
    """Put a key under ``label`` that is sensitive and unextractable now, but not from birth."""
    token = pkcs11.lib(str(softhsm.module)).get_token(token_label=TOKEN)
    session = token.open(rw=True)  # shares the login of the keyring's session
    common = {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.ENCRYPT: True,
        Attribute.DECRYPT: True,
        Attribute.LABEL: label,
    }
    if how == "imported":  # C_CreateObject with a value its planter knows
        session.create_object(
            {
                **common,
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: pkcs11.KeyType.AES,
                Attribute.VALUE: bytes(range(32)),
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
            }
        )
        return
    key = session.generate_key(  # generated exportable, read out, then locked down
        pkcs11.KeyType.AES,
        256,
        store=True,
        template={**common, Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
    )
    assert len(key[Attribute.VALUE]) == 32
    key[Attribute.SENSITIVE] = True
    key[Attribute.EXTRACTABLE] = False


@pytest.mark.parametrize("how", ["imported", "exported-then-locked"])
def test_a_key_under_our_label_that_was_ever_known_outside_the_token_is_refused(
    softhsm: SoftHsm, fresh: Keyring, how: str
) -> None:
    """CKA_LOCAL, CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE, not only today's flags.

    A planted "next version" that is sensitive and unextractable now, but whose
    value its planter knows, would otherwise become current and every data key
    wrapped from then on would be readable by the planter.
    """
    _plant(softhsm, kek_label(fresh.keyring_id, 2), how)
    with pytest.raises(KeyringError, match="was not generated in the token") as refused:
        Keyring.open_pkcs11(softhsm.config(TOKEN), fresh.keyring_id)
    assert "\n" not in str(refused.value)
    with pytest.raises(KeyringError, match="was not generated in the token"):
        fresh.rotate()  # the rotation re-reads the token and meets it too
