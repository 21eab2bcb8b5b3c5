"""The data directory's pointer to an HSM-held keyring: its id, nothing secret.

With ``INTERLOCK_KEK_BACKEND=pkcs11`` the KEKs live in the token, labelled by
keyring id and version (:func:`interlock.crypto.pkcs11_kek.kek_label`); one
token may hold the keyrings of several deployments, so the data directory
records which one is this deployment's, in ``keyring.pkcs11.json``::

    {"format": "interlock-keyring-ref/1", "backend": "pkcs11",
     "keyring_id": "<32 lowercase hex>"}

It is written once by ``interlock init`` (0600, atomic, never overwritten) and
read with the key file's checks (no symlink, regular file, not open to group
or others), so that a planted file cannot point the deployment at another
keyring unnoticed. Losing it loses nothing: the id is also in the store's
deployment record and in the token's labels (see docs/hsm.md).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Final

from interlock.crypto import keyfile
from interlock.errors import AlreadyInitialisedError, KeyFileError, KeyringError

__all__ = ["FORMAT", "read_reference", "write_reference"]

FORMAT: Final = "interlock-keyring-ref/1"
_KEYRING_ID: Final = re.compile(r"[0-9a-f]{32}")
_MAX_FILE: Final = 4096


def write_reference(path: Path, keyring_id: str) -> None:
    """Create ``path`` naming ``keyring_id``; :class:`AlreadyInitialisedError` if it exists."""
    document = {"format": FORMAT, "backend": "pkcs11", "keyring_id": keyring_id}
    payload = json.dumps(document, indent=2).encode() + b"\n"
    try:
        keyfile.write_private_file(path, payload)
    except FileExistsError:
        raise AlreadyInitialisedError(f"{path} already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise KeyringError(f"{path}: cannot write the keyring reference ({exc.strerror})") from None


def read_reference(path: Path) -> str:
    """The keyring id recorded at ``path``; :class:`KeyFileError` if the file is unusable."""
    data = keyfile.read_private_file(
        path,
        what="keyring reference",
        limit=_MAX_FILE,
        missing="no keyring reference; run `interlock init` first",
    )
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        document = None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise KeyFileError(f"{path}: malformed keyring reference: format is not {FORMAT!r}")
    keyring_id = document.get("keyring_id")
    if document.get("backend") != "pkcs11" or not isinstance(keyring_id, str):
        raise KeyFileError(f"{path}: malformed keyring reference: backend or keyring_id")
    if not _KEYRING_ID.fullmatch(keyring_id):
        raise KeyFileError(f"{path}: malformed keyring reference: keyring_id")
    return keyring_id
