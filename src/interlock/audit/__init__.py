"""The tamper-evident audit trail: an append-only Merkle log of integration decisions.

Every package records evidence through an :class:`AuditSink`
(``sink.record(AuditEntry(...))``), never by writing the audit tables. The
log hashes entries as RFC 9162 leaves, signs a C2SP checkpoint per committed
batch, and answers inclusion and consistency proofs; see ``docs/audit.md``.

The hashing, signed notes and checkpoints are pure functions in
:mod:`interlock.proofs`, which the offline verifier (:mod:`interlock.sdk.audit`)
shares without importing this package. The database-backed log is
:class:`interlock.audit.service.AuditLog`.
"""

from interlock.audit.entry import AuditEntry, Outcome, Volume
from interlock.audit.errors import AuditError, AuditUnavailableError, AuditVerificationError
from interlock.audit.sink import AuditSink, MemorySink
from interlock.proofs.errors import CheckpointError, ProofError

__all__ = [
    "AuditEntry",
    "AuditError",
    "AuditSink",
    "AuditUnavailableError",
    "AuditVerificationError",
    "CheckpointError",
    "MemorySink",
    "Outcome",
    "ProofError",
    "Volume",
]
