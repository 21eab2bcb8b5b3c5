"""C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint): the signed tree head's text.

::

    <origin>
    <tree size, decimal>
    <base64 root hash>

signed as a C2SP signed note (:mod:`interlock.proofs.note`), so existing
witness tooling can read our tree heads.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from interlock.crypto.ed25519 import Ed25519Signer
from interlock.proofs.errors import CheckpointError
from interlock.proofs.note import NoteVerifier, open_note, sign_note
from interlock.proofs.rfc9162 import HASH_SIZE

__all__ = ["Checkpoint", "open_checkpoint"]

_SIZE: Final = re.compile(r"^(0|[1-9][0-9]{0,18})$")
_ORIGIN: Final = re.compile(r"^\S(.*\S)?$")


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: which log (origin), how many entries, and the root hash."""

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        """Refuse values the text form cannot carry."""
        if not _ORIGIN.match(self.origin) or "\n" in self.origin:
            raise CheckpointError("the origin is one non-empty line")
        if not 0 <= self.size < 2**63:
            raise CheckpointError("the tree size is out of range")
        if len(self.root) != HASH_SIZE:
            raise CheckpointError("the root hash is 32 bytes")

    def text(self) -> str:
        """The checkpoint body (what is signed)."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    def sign(self, name: str, signer: Ed25519Signer) -> str:
        """The signed note of this checkpoint."""
        return sign_note(self.text(), name, signer)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """A checkpoint from its (already authenticated) text; extension lines are refused."""
        lines = text.split("\n")
        if len(lines) != 4 or lines[3] != "":
            raise CheckpointError("a checkpoint is three lines: origin, size, root hash")
        origin, size, root = lines[:3]
        if not _SIZE.match(size):
            raise CheckpointError("the checkpoint's tree size is not a decimal number")
        try:
            raw = base64.b64decode(root, validate=True)
        except binascii.Error:
            raise CheckpointError("the checkpoint's root hash is not base64") from None
        return cls(origin, int(size), raw)


def open_checkpoint(
    note: str, verifiers: Sequence[NoteVerifier], origin: str | None = None
) -> Checkpoint:
    """The checkpoint in a signed ``note`` after its signature verifies.

    With ``origin``, a checkpoint of another log is refused (C2SP: a verifier
    must check the origin line).
    """
    checkpoint = Checkpoint.parse(open_note(note, verifiers))
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError("the checkpoint belongs to another log (origin differs)")
    return checkpoint
