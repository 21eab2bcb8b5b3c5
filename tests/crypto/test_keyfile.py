"""The key file: private from the first byte, never overwritten, refused when unsafe."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
from pathlib import Path

import pytest

from interlock.crypto import Keyring, keyfile
from interlock.errors import AlreadyInitialisedError, KeyFileError, KeyringError

_KEY_B64 = base64.b64encode(b"k" * 32).decode()  # "a2tr..."
_ID = "ab" * 16
_CREATED = "2024-05-01T12:00:00+00:00"


def _write(path: Path, content: str | bytes, mode: int = 0o600) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    os.write(fd, content.encode() if isinstance(content, str) else content)
    os.close(fd)
    path.chmod(mode)


def _version(**changes: object) -> list[dict[str, object]]:
    entry: dict[str, object] = {"version": 1, "created": _CREATED, "key": _KEY_B64}
    entry.update(changes)
    return [entry]


def _document(**changes: object) -> str:
    document: dict[str, object] = {
        "format": "interlock-keyring/1",
        "keyring_id": _ID,
        "current": 1,
        "versions": _version(),
    }
    document.update(changes)
    return json.dumps(document)


def test_create_writes_a_0600_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    """The key file is 0600 and is the only thing ``create`` leaves in the directory."""
    path = tmp_path / "keyring.json"
    Keyring.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keyring.json"]


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
def test_created_file_is_exactly_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    """A permissive umask cannot open the file up, nor a strict one make it unwritable."""
    old = os.umask(umask)
    try:
        Keyring.create(tmp_path / "k.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k.json").stat().st_mode) == 0o600


def test_create_refuses_to_overwrite_an_existing_file(tmp_path: Path) -> None:
    """An existing file, keyring or not, is never replaced."""
    path = tmp_path / "keyring.json"
    path.write_text("precious")
    with pytest.raises(AlreadyInitialisedError, match="refusing to overwrite"):
        Keyring.create(path)
    assert path.read_text() == "precious"


def test_create_refuses_to_write_through_a_dangling_symlink(tmp_path: Path) -> None:
    """A symlink at the path is not followed to create a file elsewhere."""
    target = tmp_path / "elsewhere.json"
    (tmp_path / "keyring.json").symlink_to(target)
    with pytest.raises(AlreadyInitialisedError):
        Keyring.create(tmp_path / "keyring.json")
    assert not target.exists()


def test_create_in_a_missing_directory_is_a_keyring_error(tmp_path: Path) -> None:
    """An unwritable location is reported as such, not as 'already initialised'."""
    with pytest.raises(KeyringError, match="cannot create") as caught:
        Keyring.create(tmp_path / "absent" / "keyring.json")
    assert not isinstance(caught.value, AlreadyInitialisedError)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o601, 0o610])
def test_load_refuses_a_file_open_to_group_or_others(tmp_path: Path, mode: int) -> None:
    """Any group or other permission bit makes the key file unusable; the fix is named."""
    path = tmp_path / "keyring.json"
    Keyring.create(path)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match=re.escape(f"(mode {mode:04o}); run `chmod 600 {path}`")):
        Keyring.load(path)


def test_load_accepts_a_read_only_owner_file(tmp_path: Path) -> None:
    """0400 grants nothing to others, so it is as safe as 0600."""
    path = tmp_path / "keyring.json"
    Keyring.create(path)
    path.chmod(0o400)
    assert Keyring.load(path).versions == (1,)


def test_load_refuses_a_symlink(tmp_path: Path) -> None:
    """A symlinked key file could point anywhere; it is refused, even to a safe file."""
    real = tmp_path / "real.json"
    Keyring.create(real)
    (tmp_path / "link.json").symlink_to(real)
    with pytest.raises(KeyFileError, match="symbolic link"):
        Keyring.load(tmp_path / "link.json")


def test_load_refuses_a_fifo_without_hanging(tmp_path: Path) -> None:
    """A FIFO planted at the path is refused at once instead of blocking start-up."""
    path = tmp_path / "keyring.json"
    os.mkfifo(path, 0o600)
    with pytest.raises(KeyFileError, match="not a regular file"):
        Keyring.load(path)


def test_load_refuses_a_directory(tmp_path: Path) -> None:
    """A directory at the key file's path is not a key file."""
    path = tmp_path / "keyring.json"
    path.mkdir(mode=0o700)
    with pytest.raises(KeyFileError, match="not a regular file"):
        Keyring.load(path)


def test_load_of_a_missing_file_says_run_init(tmp_path: Path) -> None:
    """The message names the fix."""
    with pytest.raises(KeyFileError, match="interlock init"):
        Keyring.load(tmp_path / "absent.json")


def test_load_refuses_an_oversized_file(tmp_path: Path) -> None:
    """The parser's input is capped (deny by default: size caps on every parser)."""
    path = tmp_path / "keyring.json"
    _write(path, b" " * (1024 * 1024 + 1))
    with pytest.raises(KeyFileError, match="larger than"):
        Keyring.load(path)


def test_a_well_formed_file_loads(tmp_path: Path) -> None:
    """The reference document of these tests is itself valid."""
    path = tmp_path / "keyring.json"
    _write(path, _document())
    keyring = Keyring.load(path)
    assert (keyring.keyring_id, keyring.versions, keyring.current_version) == (_ID, (1,), 1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not JSON"),
        ("[" * 100_000 + "]" * 100_000, "not JSON"),
        (b"\xff\xfe", "not JSON"),
        ("[]", "format"),
        (_document(format="interlock-keyring/2"), "format"),
        (_document(keyring_id="xyz"), "keyring_id"),
        (_document(keyring_id="AB" * 16), "keyring_id"),
        (_document(keyring_id="ab " * 10 + "ab"), "keyring_id"),
        (_document(keyring_id=7), "keyring_id"),
        (_document(versions=[]), "versions"),
        (_document(versions={"1": _KEY_B64}), "versions"),
        (_document(versions=["x"]), "unique integer 'version'"),
        (_document(versions=_version(version=True)), "unique integer 'version'"),
        (_document(versions=_version(version=0)), "unique integer 'version'"),
        (_document(versions=_version(version=2**32)), "unique integer 'version'"),
        (_document(versions=_version() + _version()), "unique integer 'version'"),
        (_document(versions=_version(key="c2hvcnQ=")), "key is not 256 bits"),
        (_document(versions=_version(key="not base64!")), "key is not 256 bits"),
        (_document(versions=_version(key=None)), "key is not 256 bits"),
        (_document(versions=_version(created="yesterday")), "created"),
        (_document(versions=_version(created=None)), "created"),
        (_document(current=2), "current"),
        (_document(current="1"), "current"),
    ],
)
def test_malformed_files_are_refused_by_field(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    """Each malformation names the field at fault, on one line, and never echoes key bytes."""
    path = tmp_path / "keyring.json"
    _write(path, content)
    with pytest.raises(KeyFileError, match=message) as caught:
        Keyring.load(path)
    text = str(caught.value)
    assert "malformed keyring" in text
    assert "\n" not in text
    assert _KEY_B64[:8] not in text


def test_a_replacement_that_would_not_load_is_not_written(tmp_path: Path) -> None:
    """The new content is parsed before it replaces the old: a bad version bricks nothing."""
    path = tmp_path / "keyring.json"
    Keyring.create(path)
    before = path.read_bytes()
    state = keyfile.read(path)
    too_far = keyfile.MAX_VERSION + 1
    broken = keyfile.KeyFileContents(
        state.keyring_id,
        too_far,
        {**state.keys, too_far: os.urandom(32)},
        {**state.created, too_far: _CREATED},
    )
    with pytest.raises(KeyringError, match="not writing it") as refused:
        keyfile.write_replacing(path, broken)
    assert "\n" not in str(refused.value)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keyring.json"]  # no temporary file left
    assert Keyring.load(path).versions == (1,)
