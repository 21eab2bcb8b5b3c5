"""Witness cosignatures on checkpoints (C2SP tlog-cosignature, Ed25519 ``cosignature/v1``).

A witness that accepts a checkpoint answers with a note signature line: the
witness's name, then ``base64(key ID || timestamp || Ed25519 signature)``.
The key ID is ``SHA-256(name || "\\n" || 0x04 || public key)[:4]``; the
timestamp is eight bytes, big-endian seconds since the epoch; the signed
message is ``cosignature/v1\\n``, ``time <timestamp>\\n`` and the whole
checkpoint text (C2SP tlog-cosignature, "Ed25519 signed message").

:class:`CosignatureVerifier` checks such a line against a witness key given as
a C2SP verifier key (``name+hexid+base64(0x04 || key)``). Failures are one
:class:`~interlock.proofs.errors.CheckpointError` naming what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from interlock.crypto.ed25519 import PUBLIC_KEY_SIZE, Ed25519Signer, verify_ed25519
from interlock.proofs.errors import CheckpointError

__all__ = ["Cosignature", "CosignatureVerifier", "cosign", "cosigned_message"]

_COSIGNATURE_V1: Final = b"\x04"
_DASH: Final = "\u2014 "  # em dash and a space
_SIGNATURE_BYTES: Final = 64
#: A witness's clock may run ahead of ours by this much (C2SP: verifiers MAY refuse the future).
MAX_SKEW_SECONDS: Final = 300
MAX_LINES: Final = 100


def cosigned_message(text: str, timestamp: int) -> bytes:
    """What a ``cosignature/v1`` signs for the checkpoint ``text`` at ``timestamp``."""
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


@dataclass(frozen=True)
class Cosignature:
    """A verified cosignature: by whom (name and key ID), when (epoch seconds), its line."""

    witness: str
    key_id: bytes
    timestamp: int
    line: str


@dataclass(frozen=True)
class CosignatureVerifier:
    """A witness's Ed25519 cosigning key: its name and public key."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        """Refuse names and keys the format cannot carry."""
        if not self.name or any(c.isspace() or c == "+" for c in self.name):
            raise CheckpointError("a witness name is non-empty, without spaces or '+'")
        if len(self.public_key) != PUBLIC_KEY_SIZE:
            raise CheckpointError("an Ed25519 public key is 32 bytes")

    @property
    def key_id(self) -> bytes:
        """The 4-byte key ID (type 0x04)."""
        material = self.name.encode() + b"\n" + _COSIGNATURE_V1 + self.public_key
        return hashlib.sha256(material).digest()[:4]

    @property
    def vkey(self) -> str:
        """The verifier key text, ``name+hexid+base64(0x04 || key)``."""
        encoded = base64.b64encode(_COSIGNATURE_V1 + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def parse(cls, vkey: str) -> CosignatureVerifier:
        """A verifier from its ``name+hexid+base64key`` text; type 0x04, and the id must match."""
        parts = vkey.strip().split("+", 2)  # the base64 key may itself contain "+"
        if len(parts) != 3 or len(parts[1]) != 8:
            raise CheckpointError("a witness key is name+hexid+base64key")
        try:
            raw = base64.b64decode(parts[2], validate=True)
            wanted = bytes.fromhex(parts[1])
        except (binascii.Error, ValueError):
            raise CheckpointError("the witness key is not valid hex and base64") from None
        if raw[:1] != _COSIGNATURE_V1:
            raise CheckpointError("a witness key is an Ed25519 cosignature/v1 key (type 0x04)")
        verifier = cls(parts[0], raw[1:])
        if verifier.key_id != wanted:
            raise CheckpointError("the witness key's id does not match its name and key")
        return verifier

    def find(self, text: str, lines: str, now: Callable[[], float] = time.time) -> Cosignature:
        """This witness's valid cosignature of checkpoint ``text`` among signature ``lines``.

        Lines by other keys are ignored (C2SP signed-note); a line by this key
        that does not verify, or a timestamp more than :data:`MAX_SKEW_SECONDS`
        in the future, is refused, as is an answer without this key's line.
        """
        listed = [line for line in lines.split("\n") if line]
        if len(listed) > MAX_LINES:
            raise CheckpointError("the witness answered too many signature lines")
        for line in listed:
            name, key_id, payload = _parse(line)
            if name != self.name or key_id != self.key_id:
                continue
            if len(payload) != 8 + _SIGNATURE_BYTES:
                raise CheckpointError(f"the cosignature by {name} has the wrong length")
            (timestamp,) = struct.unpack(">Q", payload[:8])
            if timestamp >= 2**63 or timestamp > now() + MAX_SKEW_SECONDS:
                raise CheckpointError(f"the cosignature by {name} is dated in the future")
            message = cosigned_message(text, timestamp)
            if not verify_ed25519(self.public_key, message, payload[8:]):
                raise CheckpointError(f"the cosignature by {name} does not verify")
            return Cosignature(name, key_id, timestamp, line)
        raise CheckpointError(f"the answer carries no cosignature by {self.name}")


def cosign(text: str, name: str, signer: Ed25519Signer, timestamp: int) -> str:
    """A ``cosignature/v1`` line for checkpoint ``text`` (what a witness answers)."""
    verifier = CosignatureVerifier(name, signer.public_key)
    signature = signer.sign(cosigned_message(text, timestamp))
    payload = verifier.key_id + struct.pack(">Q", timestamp) + signature
    return f"{_DASH}{name} {base64.b64encode(payload).decode()}"


def _parse(line: str) -> tuple[str, bytes, bytes]:
    if not line.startswith(_DASH):
        raise CheckpointError("a signature line starts with an em dash and a space")
    name, _, encoded = line[len(_DASH) :].partition(" ")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise CheckpointError("a signature is not valid base64") from None
    if len(raw) < 5:
        raise CheckpointError("a signature is too short")
    return name, raw[:4], raw[4:]
