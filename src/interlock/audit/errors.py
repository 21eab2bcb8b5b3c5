"""Errors of the audit log, under the one root :class:`~interlock.errors.InterlockError`."""

from __future__ import annotations

from interlock.errors import InterlockError

__all__ = [
    "AuditError",
    "AuditUnavailableError",
    "AuditVerificationError",
]


class AuditError(InterlockError):
    """The audit log could not be opened or used."""

    code = "audit_error"


class AuditUnavailableError(AuditError):
    """An entry could not be made durable in time; the caller must fail closed."""

    code = "audit_unavailable"


class AuditVerificationError(AuditError):
    """The stored log contradicts itself, a signed tree head or a witness.

    ``index`` is the first entry the failure implicates (``None`` when it is
    not about one entry, e.g. a bad signature on the log's key).
    """

    code = "audit_verification_failed"

    def __init__(self, message: str, index: int | None) -> None:
        super().__init__(message)
        self.index = index
