"""The keyring's file: its JSON format, and reading and writing it safely.

The format::

    {"format": "interlock-keyring/1", "keyring_id": "<32 lowercase hex>",
     "current": 2,
     "versions": [{"version": 1, "created": "<ISO 8601>", "key": "<base64>"}, ...]}

Threats this module answers:

* *Another local user reads the key.* Files are created 0600 with ``O_EXCL``
  (never briefly readable by others, whatever the umask), and a file that grants
  group or others any permission is refused on load, as OpenSSH does for keys.
* *A symlink redirects the key file* (to a copy an attacker controls, or makes
  us overwrite another file): the last path component is opened with
  ``O_NOFOLLOW`` and refused if it is a link. Protecting the directory itself
  (0700) is the data directory's job.
* *A crash leaves a torn file.* Every write goes to a temporary file in the
  same directory, is fsynced, then appears under its name in one step
  (``link`` for a new file, which also refuses to overwrite; ``replace``
  otherwise), and the directory is fsynced.
* *Two rotations at once lose a version.* :func:`locked` serialises writers.

Error messages name the file and the field at fault, never key bytes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import re
import secrets
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, NoReturn

from interlock.crypto import aead
from interlock.errors import (
    AlreadyInitialisedError,
    InvalidRequestError,
    KeyFileError,
    KeyringError,
)

__all__ = [
    "FORMAT",
    "MAX_VERSION",
    "KeyFileContents",
    "locked",
    "read",
    "read_private_file",
    "read_small_file",
    "write_new",
    "write_replacing",
]

FORMAT: Final = "interlock-keyring/1"
#: Versions travel in blob headers as uint32.
MAX_VERSION: Final = 2**32 - 1
_MAX_FILE: Final = 1024 * 1024  # a million bytes is some ten thousand rotations
_KEYRING_ID: Final = re.compile(r"[0-9a-f]{32}")
_PRIVATE: Final = 0o600


@dataclass(frozen=True)
class KeyFileContents:
    """One consistent snapshot of a key file. Internal to :mod:`interlock.crypto`."""

    keyring_id: str
    current: int
    keys: Mapping[int, bytes] = field(repr=False)
    created: Mapping[int, str]


def read(path: Path) -> KeyFileContents:
    """Read and validate the key file at ``path``; :class:`KeyFileError` if unusable."""
    return _parse(path, _read_private(path))


def write_new(path: Path, contents: KeyFileContents) -> None:
    """Create ``path`` (0600); :class:`AlreadyInitialisedError` if anything is there."""
    try:
        _write_private(path, _checked(path, contents), replace=False)
    except FileExistsError:
        raise AlreadyInitialisedError(
            f"{path} already exists; refusing to overwrite a keyring "
            "(data sealed with it would become unreadable)"
        ) from None
    except OSError as exc:
        raise KeyringError(f"{path}: cannot create the key file ({exc.strerror})") from None


def write_replacing(path: Path, contents: KeyFileContents) -> None:
    """Atomically replace the key file at ``path`` with ``contents`` (0600).

    The new content is parsed as a load would parse it first: a file that would not
    load again is not written (the one in place stays), since every value sealed
    with the keyring would be unreadable until it was repaired by hand.
    """
    try:
        _write_private(path, _checked(path, contents), replace=True)
    except OSError as exc:
        raise KeyringError(f"{path}: cannot write the key file ({exc.strerror})") from None


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``'s sibling lock file (across processes)."""
    lock = path.with_name(f".{path.name}.lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, _PRIVATE)
    except OSError as exc:
        raise KeyringError(f"{lock}: cannot lock the key file ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _read_private(path: Path) -> bytes:
    return read_private_file(
        path,
        what="key file",
        limit=_MAX_FILE,
        missing="no keyring file; run `interlock init` first",
    )


def read_private_file(path: Path, *, what: str, limit: int, missing: str | None = None) -> bytes:
    """At most ``limit`` bytes of a private file (key file, PIN file) at ``path``.

    Refuses, with :class:`KeyFileError` naming ``what`` and the path, a missing
    file, a symbolic link, anything but a regular file, a file that grants group
    or others any permission, and a file over ``limit`` bytes.
    """
    # O_NONBLOCK: opening a FIFO planted at the path must not hang start-up.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise KeyFileError(f"{path}: {missing or f'no {what} there'}") from None
    except OSError as exc:
        if path.is_symlink():
            raise KeyFileError(
                f"{path}: {what} is a symbolic link; refusing it (a link can point the "
                f"{what} anywhere), so put the real file at this path"
            ) from None
        raise KeyFileError(f"{path}: cannot open {what} ({exc.strerror})") from None
    try:
        # fstat the descriptor we read, not the path: no window to swap the file.
        _check_private(path, os.fstat(fd), what)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise KeyFileError(f"{path}: {what} is larger than {limit} bytes")
    return data


def _check_private(path: Path, info: os.stat_result, what: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(f"{path}: {what} is not a regular file")
    if info.st_mode & 0o077:
        raise KeyFileError(
            f"{path}: {what} is accessible by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {path}`"
        )


def _parse(path: Path, data: bytes) -> KeyFileContents:
    def bad(what: str) -> NoReturn:
        raise KeyFileError(f"{path}: malformed keyring: {what}")

    try:
        document = json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        bad("not JSON")
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        bad(f"format is not {FORMAT!r}")
    keyring_id = document.get("keyring_id")
    if not isinstance(keyring_id, str) or not _KEYRING_ID.fullmatch(keyring_id):
        bad("keyring_id must be 32 lowercase hex digits")
    versions = document.get("versions")
    if not isinstance(versions, list) or not versions:
        bad("versions must be a non-empty list")
    keys: dict[int, bytes] = {}
    created: dict[int, str] = {}
    for entry in versions:
        version = _version_of(entry)
        if version is None or version in keys:
            bad("each version needs a unique integer 'version' from 1 to 2^32-1")
        key, when = _key_of(entry), _created_of(entry)
        if key is None:
            bad(f"version {version}: key is not 256 bits of base64")
        if when is None:
            bad(f"version {version}: created is not an ISO 8601 time")
        keys[version], created[version] = key, when
    current = document.get("current")
    if type(current) is not int or current not in keys:
        bad("current must name one of the versions")
    return KeyFileContents(keyring_id, current, keys, created)


def _version_of(entry: object) -> int | None:
    version = entry.get("version") if isinstance(entry, dict) else None
    # type() rather than isinstance(): JSON true would otherwise be version 1.
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        return None
    return version


def _key_of(entry: dict[str, Any]) -> bytes | None:
    text = entry.get("key")
    if not isinstance(text, str):
        return None
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if len(key) == aead.KEY_SIZE else None


def _created_of(entry: dict[str, Any]) -> str | None:
    text = entry.get("created")
    if not isinstance(text, str):
        return None
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return None
    return text


def _checked(path: Path, contents: KeyFileContents) -> bytes:
    """``contents`` encoded, once :func:`_parse` has accepted the encoding; else KeyringError."""
    payload = _encode(contents)
    try:
        _parse(path, payload)
    except KeyFileError as exc:
        raise KeyringError(f"{exc}; it would not load again, so not writing it") from None
    return payload


def _encode(contents: KeyFileContents) -> bytes:
    document = {
        "format": FORMAT,
        "keyring_id": contents.keyring_id,
        "current": contents.current,
        "versions": [
            {
                "version": version,
                "created": contents.created[version],
                "key": base64.b64encode(key).decode("ascii"),
            }
            for version, key in sorted(contents.keys.items())
        ],
    }
    return json.dumps(document, indent=2).encode() + b"\n"


def write_private_file(path: Path, payload: bytes, *, replace: bool = False) -> None:
    """Write key material to ``path``: mode 0600 from the first byte, atomic, durable.

    Without ``replace`` an existing file (or symlink) at ``path`` raises
    ``FileExistsError``. Used for every private key Interlock writes to disk.
    """
    _write_private(path, payload, replace=replace)


def _write_private(path: Path, payload: bytes, *, replace: bool) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, _PRIVATE)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), _PRIVATE)  # exact, whatever the umask removed
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            tmp.replace(path)
        else:
            os.link(tmp, path)  # atomic, and fails if anything (even a symlink) is there
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # The new directory entry is only durable once the directory is fsynced.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_small_file(path: Path, limit: int) -> bytes:
    """A key or certificate file given on the command line: at most ``limit`` bytes.

    Unreadable or oversized files are a one-line :class:`InvalidRequestError`.
    """
    try:
        with path.open("rb") as file:
            data = file.read(limit + 1)
    except OSError as exc:
        raise InvalidRequestError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise InvalidRequestError(f"{path} is larger than {limit} bytes")
    return data
