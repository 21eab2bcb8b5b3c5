"""One KEK version, sealed for the trip to another host: JWE with PBES2 (RFC 7518 §4.8).

A file keyring rotated on one host holds a version the others lack
(docs/scale.md). ``interlock keyring export-version`` seals that version's key
for transport, ``import-version`` adds it on the other host: never in clear,
on disk or on the wire. The format is a compact JWE (RFC 7516) a reviewer can
check with any JOSE library:

* ``alg`` ``PBES2-HS512+A256KW``, ``enc`` ``A256GCM``, ``p2c`` 300 000
  (joserfc's ceiling; PBKDF2-HMAC-SHA512, RFC 8018);
* the passphrase is generated here, 192 random bits, shown once by the CLI:
  a human-chosen one would make the count the only defence;
* ``kid`` is ``KEYRING-ID/vVERSION`` in the protected (authenticated) header,
  so the importing host refuses another deployment's key before opening it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from dataclasses import dataclass
from typing import Final

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from interlock.crypto import aead, keyfile
from interlock.errors import DecryptionError, KeyringError

__all__ = ["ALGORITHMS", "KekExport", "new_passphrase", "open_export", "seal_export"]

ALGORITHMS: Final = ("PBES2-HS512+A256KW", "A256GCM")
_COUNT: Final = 300_000
_FORMAT: Final = "interlock-kek-version/1"
_KID: Final = re.compile(r"^([0-9a-f]{32})/v([1-9][0-9]{0,9})$")
_MAX_TOKEN: Final = 4096
_FAILED: Final = "the export does not open with this passphrase (or was altered)"


@dataclass(frozen=True)
class KekExport:
    """One KEK version's key, in memory only while it is moved."""

    keyring_id: str
    version: int
    created: str
    key: bytes

    def __repr__(self) -> str:
        return f"KekExport(keyring_id={self.keyring_id}, version={self.version})"


def new_passphrase() -> str:
    """A transport passphrase: 192 random bits, URL-safe base64 (32 characters)."""
    return secrets.token_urlsafe(24)


def seal_export(export: KekExport, passphrase: str) -> str:
    """``export`` as a compact JWE under ``passphrase``."""
    payload = {
        "format": _FORMAT,
        "keyring_id": export.keyring_id,
        "version": export.version,
        "created": export.created,
        "key": base64.b64encode(export.key).decode("ascii"),
    }
    header = {
        "alg": ALGORITHMS[0],
        "enc": ALGORITHMS[1],
        "p2c": _COUNT,
        "cty": _FORMAT,
        "kid": f"{export.keyring_id}/v{export.version}",
    }
    key = OctKey.import_key(passphrase.encode())
    return jwe.encrypt_compact(header, json.dumps(payload).encode(), key, algorithms=ALGORITHMS)


def open_export(token: str, passphrase: str, keyring_id: str) -> KekExport:
    """The version sealed in ``token``, which must be of keyring ``keyring_id``.

    :class:`KeyringError` if it is of another keyring or not an export at all;
    :class:`DecryptionError` (opaque) if the passphrase is wrong or it was altered.
    """
    token = token.strip()
    if len(token) > _MAX_TOKEN or token.count(".") != 4:
        raise KeyringError("not a KEK version export (a compact JWE)")
    kid = _kid_unverified(token)
    found = _KID.fullmatch(kid or "")
    if found is None:
        raise KeyringError("not a KEK version export (no keyring id and version in its header)")
    if found.group(1) != keyring_id:
        raise KeyringError(
            f"this export is of keyring {found.group(1)}; this host's keyring is {keyring_id}"
        )
    version = int(found.group(2))
    if version > keyfile.MAX_VERSION:  # a blob header holds it as uint32
        raise KeyringError(
            f"this export names KEK version {version}; versions run from 1 to "
            f"{keyfile.MAX_VERSION}, so it was not made by `interlock keyring export-version`"
        )
    try:
        opened = jwe.decrypt_compact(
            token, OctKey.import_key(passphrase.encode()), algorithms=ALGORITHMS
        )
    except (JoseError, ValueError):
        raise DecryptionError(_FAILED) from None
    if opened.protected.get("kid") != kid or opened.plaintext is None:
        raise DecryptionError(_FAILED)
    return _payload(opened.plaintext, found.group(1), version)


def _kid_unverified(token: str) -> str | None:
    """The header's ``kid`` before decryption (checked again once it is authenticated)."""
    encoded = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (binascii.Error, ValueError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


def _payload(plaintext: bytes, keyring_id: str, version: int) -> KekExport:
    try:
        document = json.loads(plaintext)
        key = base64.b64decode(document["key"], validate=True)
        created = document["created"]
        same = (
            document["format"] == _FORMAT
            and document["keyring_id"] == keyring_id
            and document["version"] == version
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise DecryptionError(_FAILED) from None
    if not same or len(key) != aead.KEY_SIZE or not isinstance(created, str):
        raise DecryptionError(_FAILED)
    return KekExport(keyring_id, version, created, key)
