"""C2SP signed notes and checkpoints: Go's published example, strict opening."""

from __future__ import annotations

import base64

import pytest

from interlock.crypto.ed25519 import Ed25519Signer
from interlock.proofs.checkpoint import Checkpoint, open_checkpoint
from interlock.proofs.errors import CheckpointError
from interlock.proofs.note import NoteVerifier, open_note, sign_note

# The example of golang.org/x/mod/sumdb/note's documentation (its private key is public).
GO_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIGNATURE = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"


def test_go_sumdb_note_example_signs_and_opens_identically() -> None:
    """Key id, verifier key text and signature line equal Go's, byte for byte."""
    signer = Ed25519Signer.from_private_bytes(GO_SEED)
    verifier = NoteVerifier.parse(GO_VKEY)
    assert verifier.public_key == signer.public_key
    assert verifier.vkey == GO_VKEY
    note = sign_note(GO_TEXT, "PeterNeumann", signer)
    assert note == GO_TEXT + "\n" + GO_SIGNATURE
    assert open_note(note, [verifier]) == GO_TEXT


def test_unknown_signers_are_ignored_but_a_known_bad_signature_is_refused() -> None:
    """Extra cosignatures are fine; a bad one from a trusted key is not; someone must be trusted."""
    ours, theirs = Ed25519Signer.generate(), Ed25519Signer.generate()
    note = sign_note("log\n1\n" + base64.b64encode(bytes(32)).decode() + "\n", "log", ours)
    cosigned = note + sign_note(note.split("\n\n")[0] + "\n", "witness", theirs).split("\n\n")[1]
    trusted = NoteVerifier("log", ours.public_key)
    assert open_note(cosigned, [trusted]).startswith("log\n")
    with pytest.raises(CheckpointError, match="trusted"):
        open_note(note, [NoteVerifier("witness", theirs.public_key)])
    forged = note.replace("\n1\n", "\n2\n")
    with pytest.raises(CheckpointError, match="does not verify"):
        open_note(forged, [trusted])


@pytest.mark.parametrize(
    "note",
    [
        "",
        "text without signatures\n",
        "text\n\nno dash line\n",
        "text\n\n— name !!notbase64\n",
        "text\n\n— name AAAA\n",
        "te\x01xt\n\n— name AAAAAAAA\n",
        "x" * 70_000,
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    """Every malformed note is a CheckpointError, never another exception."""
    with pytest.raises(CheckpointError):
        open_note(note, [NoteVerifier("name", bytes(32))])


def test_checkpoint_round_trip_and_strict_parsing() -> None:
    """Origin, decimal size, base64 root; leading zeros, extension lines and wrong origins refused."""
    signer = Ed25519Signer.generate()
    head = Checkpoint("example.com/audit", 42, bytes(range(32)))
    verifier = NoteVerifier("example.com/audit", signer.public_key)
    assert open_checkpoint(head.sign("example.com/audit", signer), [verifier]) == head
    with pytest.raises(CheckpointError, match="another log"):
        open_checkpoint(head.sign("example.com/audit", signer), [verifier], origin="other")
    root = base64.b64encode(bytes(32)).decode()
    for text in (f"o\n042\n{root}\n", f"o\n-1\n{root}\n", "o\n1\nAAAA\n", f"o\n1\n{root}\next\n"):
        with pytest.raises(CheckpointError):
            Checkpoint.parse(text)


def test_verifier_keys_with_plus_signs_in_base64_parse() -> None:
    """The base64 part may contain '+': only the first two separate fields."""
    for _ in range(40):
        verifier = NoteVerifier("log.example/audit", Ed25519Signer.generate().public_key)
        assert NoteVerifier.parse(verifier.vkey) == verifier
    with pytest.raises(CheckpointError):
        NoteVerifier.parse(GO_VKEY.replace("c74f20a3", "c74f20a4"))


def test_a_signature_in_non_canonical_base64_is_refused() -> None:
    """A changed spare bit of the signature's last character decodes to the same bytes:
    refused, so a note with one changed byte never verifies."""
    signer = Ed25519Signer.generate()
    note = sign_note("log\n1\n" + base64.b64encode(bytes(32)).decode() + "\n", "log", signer)
    trusted = [NoteVerifier("log", signer.public_key)]
    encoded = note.rstrip("\n").rsplit(" ", 1)[1]
    assert encoded[-2:] != "=="  # 68 bytes: one "=", two spare bits in the last character
    assert encoded.endswith("=")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(encoded[-2])
    twin = encoded[:-2] + alphabet[last ^ 1] + "="
    assert base64.b64decode(twin) == base64.b64decode(encoded)
    open_note(note, trusted)
    with pytest.raises(CheckpointError, match="canonical base64"):
        open_note(note.replace(encoded, twin), trusted)
