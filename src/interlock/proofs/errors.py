"""Errors of proof and signed-note checks (root: :class:`~interlock.errors.InterlockError`)."""

from __future__ import annotations

from interlock.errors import InterlockError

__all__ = ["CheckpointError", "ProofError"]


class ProofError(InterlockError):
    """An inclusion or consistency proof does not verify, or is malformed."""

    code = "audit_proof_invalid"


class CheckpointError(InterlockError):
    """A signed note or checkpoint is malformed or its signature does not verify."""

    code = "audit_checkpoint_invalid"
