"""Proofs anyone can check: RFC 9162 Merkle trees, C2SP signed notes and checkpoints.

Pure functions over bytes, with no storage and no server: the audit log
(:mod:`interlock.audit`) builds its tree heads and proofs with them, and the
offline verifier (:mod:`interlock.sdk.audit`) checks them with the same code.
"""

from interlock.proofs.errors import CheckpointError, ProofError

__all__ = ["CheckpointError", "ProofError"]
