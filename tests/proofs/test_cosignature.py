"""Witness cosignatures (C2SP tlog-cosignature ``cosignature/v1``): made, found, refused.

The expected bytes are rebuilt here from the specification's text with
``cryptography`` directly (key ID, timestamp, signed message), so a mistake in
:mod:`interlock.proofs.cosignature` cannot agree with itself.
"""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from interlock.crypto.ed25519 import Ed25519Signer
from interlock.proofs.cosignature import (
    MAX_SKEW_SECONDS,
    CosignatureVerifier,
    cosign,
    cosigned_message,
)
from interlock.proofs.errors import CheckpointError

TEXT = "example.com/log\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
NOW = 1_790_000_000


def _witness(name: str = "witness.example/w1") -> tuple[Ed25519Signer, CosignatureVerifier]:
    signer = Ed25519Signer.generate()
    return signer, CosignatureVerifier(name, signer.public_key)


def test_a_cosignature_line_is_what_the_specification_describes() -> None:
    """Key ID, big-endian timestamp and the Ed25519 signature of the cosigned message."""
    signer, verifier = _witness()
    line = cosign(TEXT, verifier.name, signer, NOW)
    assert line.startswith("\u2014 witness.example/w1 ")
    raw = base64.b64decode(line.rsplit(" ", 1)[1])
    expected_id = hashlib.sha256(b"witness.example/w1\n\x04" + signer.public_key).digest()[:4]
    assert raw[:4] == expected_id == verifier.key_id
    assert struct.unpack(">Q", raw[4:12]) == (NOW,)
    message = b"cosignature/v1\ntime 1790000000\n" + TEXT.encode()
    assert cosigned_message(TEXT, NOW) == message
    Ed25519PublicKey.from_public_bytes(signer.public_key).verify(raw[12:], message)


def test_the_verifier_finds_its_witness_among_other_signature_lines() -> None:
    """Lines by other keys (the log's own, other witnesses) are ignored."""
    signer, verifier = _witness()
    other_signer, other = _witness("witness.example/w2")
    lines = "\n".join(
        [cosign(TEXT, other.name, other_signer, NOW), cosign(TEXT, verifier.name, signer, NOW)]
    )
    found = verifier.find(TEXT, lines + "\n", now=lambda: NOW)
    assert (found.witness, found.key_id, found.timestamp) == (verifier.name, verifier.key_id, NOW)
    assert found.line == lines.split("\n")[1]


def test_the_verifier_key_text_round_trips_and_is_checked() -> None:
    """``name+hexid+base64(0x04 || key)``; the wrong type or a mismatched id is refused."""
    _, verifier = _witness()
    assert CosignatureVerifier.parse(verifier.vkey) == verifier
    name, key_id, key = verifier.vkey.split("+", 2)
    note_key = base64.b64encode(b"\x01" + verifier.public_key).decode()
    with pytest.raises(CheckpointError, match="0x04"):
        CosignatureVerifier.parse(f"{name}+{key_id}+{note_key}")
    with pytest.raises(CheckpointError, match="does not match"):
        CosignatureVerifier.parse(f"{name}x+{key_id}+{key}")
    with pytest.raises(CheckpointError, match="name\\+hexid"):
        CosignatureVerifier.parse("no-plus-signs")
    with pytest.raises(CheckpointError, match="hex and base64"):
        CosignatureVerifier.parse(f"{name}+zzzzzzzz+{key}")


@pytest.mark.parametrize(
    "attack",
    ["other checkpoint", "other key", "future", "no line", "short", "not base64"],
)
def test_an_answer_that_does_not_prove_the_witness_cosigned_is_refused(attack: str) -> None:
    """Each way an answer can fail to be this witness's cosignature of this checkpoint."""
    signer, verifier = _witness()
    good = cosign(TEXT, verifier.name, signer, NOW)
    forged = Ed25519Signer.generate()
    lines = {
        "other checkpoint": cosign(TEXT.replace("\n5\n", "\n6\n"), verifier.name, signer, NOW),
        # Same name and key ID, another key: the ID matches, the signature does not verify.
        "other key": good.rsplit(" ", 1)[0]
        + " "
        + base64.b64encode(
            verifier.key_id + struct.pack(">Q", NOW) + forged.sign(cosigned_message(TEXT, NOW))
        ).decode(),
        "future": cosign(TEXT, verifier.name, signer, NOW + MAX_SKEW_SECONDS + 60),
        "no line": cosign(TEXT, "someone-else", forged, NOW),
        "short": good[:-20],
        "not base64": good[:-4] + "!!!!",
    }
    with pytest.raises(CheckpointError):
        verifier.find(TEXT, lines[attack], now=lambda: NOW)


def test_too_many_signature_lines_are_refused() -> None:
    """An answer is bounded before any line is examined."""
    signer, verifier = _witness()
    line = cosign(TEXT, verifier.name, signer, NOW)
    with pytest.raises(CheckpointError, match="too many"):
        verifier.find(TEXT, "\n".join([line] * 101), now=lambda: NOW)


def test_names_and_keys_the_format_cannot_carry_are_refused() -> None:
    """A name with a space or '+' and a key that is not 32 bytes."""
    with pytest.raises(CheckpointError, match="name"):
        CosignatureVerifier("two words", bytes(32))
    with pytest.raises(CheckpointError, match="32 bytes"):
        CosignatureVerifier("w", bytes(31))
