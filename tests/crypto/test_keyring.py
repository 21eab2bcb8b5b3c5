"""The key file: private from the first byte, never overwritten, never leaked."""

from __future__ import annotations

import base64
import copy
import json
import os
import pickle
import stat
import threading
from pathlib import Path

import pytest

from interlock.crypto import Keyring
from interlock.errors import AlreadyInitialisedError, KeyFileError


def _keys_in(path: Path) -> list[bytes]:
    return [base64.b64decode(v["key"]) for v in json.loads(path.read_text())["versions"]]


def test_create_writes_a_0600_file_with_one_256_bit_version(tmp_path: Path) -> None:
    """A new keyring has version 1, a 32-hex-digit id, and mode 0600."""
    path = tmp_path / "keyring.json"
    keyring = Keyring.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keyring.versions == (1,)
    assert keyring.current_version == 1
    assert len(bytes.fromhex(keyring.keyring_id)) == 16
    assert [len(k) for k in _keys_in(path)] == [32]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keyring.json"]  # no temp left


def test_create_refuses_to_overwrite(tmp_path: Path) -> None:
    """An existing file, keyring or not, is never replaced."""
    path = tmp_path / "keyring.json"
    path.write_text("precious")
    with pytest.raises(AlreadyInitialisedError):
        Keyring.create(path)
    assert path.read_text() == "precious"


def test_created_file_is_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    """The mode does not depend on the process umask."""
    old = os.umask(0)
    try:
        Keyring.create(tmp_path / "k.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k.json").stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o601])
def test_load_refuses_a_file_readable_by_others(tmp_path: Path, mode: int) -> None:
    """Group or other permission bits make the key file unusable, with the fix named."""
    path = tmp_path / "keyring.json"
    Keyring.create(path)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        Keyring.load(path)


def test_load_refuses_a_symlink(tmp_path: Path) -> None:
    """A symlinked key file could point anywhere; it is refused."""
    real = tmp_path / "real.json"
    Keyring.create(real)
    (tmp_path / "link.json").symlink_to(real)
    with pytest.raises(KeyFileError, match="cannot open"):
        Keyring.load(tmp_path / "link.json")


def test_load_of_a_missing_file_says_run_init(tmp_path: Path) -> None:
    """The message names the fix."""
    with pytest.raises(KeyFileError, match="interlock init"):
        Keyring.load(tmp_path / "absent.json")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not JSON"),
        ('{"format": "other"}', "format"),
        ('{"format": "interlock-keyring/1", "keyring_id": "xyz"}', "keyring_id"),
        (
            '{"format": "interlock-keyring/1", "keyring_id": "' + "ab" * 16 + '", "versions": []}',
            "versions",
        ),
        (
            '{"format": "interlock-keyring/1", "keyring_id": "' + "ab" * 16 + '", "current": 1, '
            '"versions": [{"version": 1, "key": "c2hvcnQ="}]}',
            "not 256 bits",
        ),
        (
            '{"format": "interlock-keyring/1", "keyring_id": "' + "ab" * 16 + '", "current": 2, '
            '"versions": [{"version": 1, "key": "' + base64.b64encode(b"k" * 32).decode() + '"}]}',
            "current",
        ),
    ],
)
def test_malformed_files_are_refused_by_field(tmp_path: Path, content: str, message: str) -> None:
    """Each malformation names the field at fault and never echoes key bytes."""
    path = tmp_path / "keyring.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content.encode())
    os.close(fd)
    with pytest.raises(KeyFileError, match=message) as caught:
        Keyring.load(path)
    assert "a2tr" not in str(caught.value)  # base64 of the test key


def test_rotation_is_persisted_and_keeps_old_versions(tmp_path: Path) -> None:
    """rotate adds a version on disk; reloading sees both, with the first key unchanged."""
    path = tmp_path / "keyring.json"
    keyring = Keyring.create(path)
    first = _keys_in(path)[0]
    assert keyring.rotate() == 2
    reloaded = Keyring.load(path)
    assert reloaded.versions == (1, 2)
    assert reloaded.current_version == 2
    assert _keys_in(path)[0] == first
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


def test_repr_pickle_and_copy_never_expose_keys(tmp_path: Path) -> None:
    """The handle shows only its id and versions, and cannot be serialised or copied."""
    path = tmp_path / "keyring.json"
    keyring = Keyring.create(path)
    key = _keys_in(path)[0]
    text = repr(keyring) + str(keyring)
    assert keyring.keyring_id in text
    for encoding in (key.hex(), base64.b64encode(key).decode(), repr(key)):
        assert encoding not in text
    with pytest.raises(TypeError):
        pickle.dumps(keyring)
    with pytest.raises(TypeError):
        copy.copy(keyring)
    with pytest.raises(TypeError):
        copy.deepcopy(keyring)
