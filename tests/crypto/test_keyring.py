"""The keyring handle: versions, rotation, and no accidental export of keys."""

from __future__ import annotations

import base64
import copy
import json
import pickle
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from interlock.crypto import KeyEncryptionKey, Keyring, keyfile
from interlock.errors import KeyFileError, KeyringError


def _keys_in(path: Path) -> list[bytes]:
    return [base64.b64decode(v["key"]) for v in json.loads(path.read_text())["versions"]]


def test_create_starts_at_version_1_with_a_random_128_bit_id(tmp_path: Path) -> None:
    """A new keyring has one 256-bit KEK, version 1, and a fresh 32-hex-digit id."""
    first = Keyring.create(tmp_path / "a.json")
    second = Keyring.create(tmp_path / "b.json")
    assert first.versions == (1,)
    assert first.current_version == 1
    assert len(bytes.fromhex(first.keyring_id)) == 16
    assert first.keyring_id == first.keyring_id.lower()
    assert first.keyring_id != second.keyring_id
    assert [len(k) for k in _keys_in(tmp_path / "a.json")] == [32]


def test_load_gives_back_what_create_wrote(tmp_path: Path) -> None:
    """A loaded handle has the same id and versions, and opens what the creator sealed."""
    path = tmp_path / "keyring.json"
    created = Keyring.create(path)
    blob = created.seal(b"hello", b"r")
    loaded = Keyring.load(path)
    assert (loaded.keyring_id, loaded.versions, loaded.path) == (created.keyring_id, (1,), path)
    assert loaded.open(blob, b"r") == b"hello"


def test_the_handle_cannot_be_built_directly(tmp_path: Path) -> None:
    """Only its constructors make a Keyring; a backend (or raw keys) cannot be slipped in."""
    from interlock.crypto.file_kek import FileKek

    backend = FileKek.create(tmp_path / "k.json")
    with pytest.raises(TypeError, match=r"Keyring\.create"):
        Keyring(object(), backend)


def test_the_keyring_is_a_key_encryption_key(tmp_path: Path) -> None:
    """The file keyring satisfies the backend protocol the envelope layer needs."""
    kek: KeyEncryptionKey = Keyring.create(tmp_path / "k.json")
    wrapped = kek.wrap(b"d" * 32, b"header", 1)
    assert len(wrapped) == kek.wrapped_size
    assert kek.unwrap(wrapped, b"header", 1) == b"d" * 32
    assert kek.has_version(1)
    assert not kek.has_version(2)


def test_rotation_is_persisted_and_keeps_old_versions(tmp_path: Path) -> None:
    """rotate adds a version on disk; reloading sees both, with the first key unchanged."""
    path = tmp_path / "keyring.json"
    keyring = Keyring.create(path)
    first = _keys_in(path)[0]
    assert keyring.rotate() == 2
    assert (keyring.versions, keyring.current_version) == ((1, 2), 2)
    reloaded = Keyring.load(path)
    assert (reloaded.versions, reloaded.current_version) == ((1, 2), 2)
    keys = _keys_in(path)
    assert keys[0] == first
    assert keys[1] != first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_concurrent_rotations_lose_no_version(tmp_path: Path) -> None:
    """Rotations from several handles at once serialise; every version survives."""
    path = tmp_path / "keyring.json"
    Keyring.create(path)
    handles = [Keyring.load(path) for _ in range(6)]
    threads = [threading.Thread(target=h.rotate) for h in handles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Keyring.load(path).versions == tuple(range(1, 8))


def test_a_failed_rotation_leaves_the_handle_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key that never reached the disk is never used to seal (it would be lost)."""
    keyring = Keyring.create(tmp_path / "keyring.json")

    def fail(path: Path, contents: object) -> None:
        raise KeyringError(f"{path}: cannot write the key file (No space left on device)")

    monkeypatch.setattr(keyfile, "write_replacing", fail)
    with pytest.raises(KeyringError, match="cannot write"):
        keyring.rotate()
    assert (keyring.versions, keyring.current_version) == ((1,), 1)


def test_rotation_refuses_a_key_file_replaced_by_another_keyring(tmp_path: Path) -> None:
    """Rotating must not mix this keyring's id with another keyring's keys."""
    path = tmp_path / "keyring.json"
    keyring = Keyring.create(path)
    path.unlink()
    other = Keyring.create(path)
    with pytest.raises(KeyFileError, match=f"now holds keyring {other.keyring_id}"):
        keyring.rotate()
    assert Keyring.load(path).versions == (1,)
    assert keyring.current_version == 1


def test_a_handle_ignores_a_replaced_key_file_when_looking_for_versions(tmp_path: Path) -> None:
    """A newer version is looked up on disk only in a file of the same keyring."""
    path = tmp_path / "keyring.json"
    keyring = Keyring.create(path)
    path.unlink()
    Keyring.create(path).rotate()
    assert not keyring.has_version(2)
    assert keyring.versions == (1,)


def test_repr_and_str_show_id_and_versions_but_no_key(tmp_path: Path) -> None:
    """The handle shows only its id and versions, in no encoding of the key."""
    path = tmp_path / "keyring.json"
    keyring = Keyring.create(path)
    keyring.rotate()
    text = repr(keyring) + str(keyring)
    assert keyring.keyring_id in text
    assert "versions=[1, 2]" in text
    for key in _keys_in(path):
        for encoding in (key.hex(), base64.b64encode(key).decode(), repr(key), str(list(key))):
            assert encoding not in text


def test_pickling_and_copying_are_refused(tmp_path: Path) -> None:
    """The handle cannot be serialised or duplicated by any standard route."""
    keyring = Keyring.create(tmp_path / "keyring.json")
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError):
            pickle.dumps(keyring, protocol=protocol)
    attempts: list[Callable[[], object]] = [
        lambda: copy.copy(keyring),
        lambda: copy.deepcopy(keyring),
        keyring.__reduce__,
        lambda: keyring.__reduce_ex__(2),
        keyring.__getstate__,
    ]
    for attempt in attempts:
        with pytest.raises(TypeError):
            attempt()


def test_the_handle_takes_no_new_attributes(tmp_path: Path) -> None:
    """``__slots__``: no ``__dict__`` where a copy of a key could be stashed or dumped."""
    keyring = Keyring.create(tmp_path / "keyring.json")
    assert not hasattr(keyring, "__dict__")
    with pytest.raises(AttributeError):
        keyring.extra = 1  # type: ignore[attr-defined]
