"""The offline verifier: importable without the server's database layer; whole-tree checks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from interlock.proofs.rfc9162 import leaf_hashes, root_of
from interlock.sdk.audit import Checkpoint, ProofError, verify_tree


@pytest.mark.processes
def test_the_sdk_verifier_does_not_import_sqlalchemy() -> None:
    """``interlock.sdk.audit`` runs where only the export and the key are available."""
    code = "import sys, interlock.sdk.audit; sys.exit('sqlalchemy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0  # noqa: S603


def test_verify_tree_recomputes_the_root_of_a_complete_log() -> None:
    """Every entry from index 0: matches the head; one changed, missing or extra is refused."""
    entries = [f"entry {i}".encode() for i in range(37)]
    head = Checkpoint("example.com/audit", 37, root_of(leaf_hashes(entries)))
    verify_tree(entries, head)
    for altered in (entries[:-1], [*entries, b"x"], [b"entry 0!", *entries[1:]], entries[::-1]):
        with pytest.raises(ProofError):
            verify_tree(altered, head)
