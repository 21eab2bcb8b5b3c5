"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 signatures.

A note is a UTF-8 text ending in a newline, a blank line, and signature lines
``— <key name> <base64(key id || signature)>``. The key id of an Ed25519 key
is the first four bytes of ``SHA-256(name || 0x0A || 0x01 || public key)``
(the sumdb / C2SP convention); a verifier key is written
``<name>+<hex key id>+<base64(0x01 || public key)>``.

Opening a note is strict, as Go's ``golang.org/x/mod/sumdb/note``: signatures
by unknown keys are ignored, a signature by a known key that does not verify
is refused, and at least one known key must have signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from interlock.crypto.ed25519 import PUBLIC_KEY_SIZE, Ed25519Signer, verify_ed25519
from interlock.proofs.errors import CheckpointError

__all__ = ["MAX_NOTE_BYTES", "NoteVerifier", "key_id", "open_note", "sign_note"]

MAX_NOTE_BYTES: Final = 64 * 1024
MAX_SIGNATURES: Final = 100
_ED25519: Final = b"\x01"
_DASH: Final = "\u2014 "  # em dash and a space
_NAME: Final = re.compile(r"^[^\s+]+$")
_CONTROL: Final = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte id of an Ed25519 key named ``name``."""
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public_key).digest()[:4]


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise CheckpointError("a key name is non-empty, without spaces or '+'")


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted Ed25519 key: its name and public key."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        """Refuse names and keys the format cannot carry."""
        _check_name(self.name)
        if len(self.public_key) != PUBLIC_KEY_SIZE:
            raise CheckpointError("an Ed25519 public key is 32 bytes")

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id."""
        return key_id(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        """The verifier key text, ``name+hexid+base64key``."""
        encoded = base64.b64encode(_ED25519 + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def parse(cls, vkey: str) -> NoteVerifier:
        """A verifier from its ``name+hexid+base64key`` text; the id must match."""
        parts = vkey.strip().split("+", 2)  # the base64 key may itself contain "+"
        if len(parts) != 3 or len(parts[1]) != 8:
            raise CheckpointError("a verifier key is name+hexid+base64key")
        try:
            raw = base64.b64decode(parts[2], validate=True)
            wanted = bytes.fromhex(parts[1])
        except (binascii.Error, ValueError):
            raise CheckpointError("the verifier key is not valid hex and base64") from None
        if raw[:1] != _ED25519:
            raise CheckpointError("only Ed25519 verifier keys are accepted")
        verifier = cls(parts[0], raw[1:])
        if verifier.key_id != wanted:
            raise CheckpointError("the verifier key's id does not match its name and key")
        return verifier


def _check_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text or _CONTROL.search(text):
        raise CheckpointError(
            "a note text ends in a newline, has no blank line and no control characters"
        )


def sign_note(text: str, name: str, signer: Ed25519Signer) -> str:
    """The signed note of ``text`` by the key ``name``."""
    _check_name(name)
    _check_text(text)
    signature = signer.sign(text.encode())
    encoded = base64.b64encode(key_id(name, signer.public_key) + signature).decode()
    return f"{text}\n{_DASH}{name} {encoded}\n"


def open_note(note: str, verifiers: Sequence[NoteVerifier]) -> str:
    """The text of ``note`` once a signature by one of ``verifiers`` verifies.

    Raises :class:`CheckpointError` for a malformed note, a known key's bad
    signature, or no signature by any known key.
    """
    if len(note.encode()) > MAX_NOTE_BYTES:
        raise CheckpointError("the note is too large")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise CheckpointError("the note has no signature block")
    text, block = note[: split + 1], note[split + 2 :]
    _check_text(text)
    lines = block[:-1].split("\n")
    if not lines or len(lines) > MAX_SIGNATURES:
        raise CheckpointError("the note has no signatures or too many")
    known = {(v.name, v.key_id): v for v in verifiers}
    verified = False
    for line in lines:
        name, signature_id, signature = _parse_signature(line)
        verifier = known.get((name, signature_id))
        if verifier is None:
            continue
        if not verify_ed25519(verifier.public_key, text.encode(), signature):
            raise CheckpointError(f"the signature by {name} does not verify")
        verified = True
    if not verified:
        raise CheckpointError("the note is not signed by a trusted key")
    return text


def _parse_signature(line: str) -> tuple[str, bytes, bytes]:
    if not line.startswith(_DASH):
        raise CheckpointError("a signature line starts with an em dash and a space")
    name, _, encoded = line[len(_DASH) :].partition(" ")
    _check_name(name)
    try:
        raw = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise CheckpointError("a signature is not valid base64") from None
    # Base64 leaves spare bits in the last character; a decoder ignores them, so
    # "...B=" and "...C=" are one signature. Only the canonical spelling passes:
    # a note with any changed byte must not verify.
    if base64.b64encode(raw).decode() != encoded:
        raise CheckpointError("a signature is not in canonical base64")
    if len(raw) < 5:
        raise CheckpointError("a signature is too short")
    return name, raw[:4], raw[4:]
