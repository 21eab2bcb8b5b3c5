"""Errors of the secrets vault."""

from __future__ import annotations

from interlock.errors import InterlockError

__all__ = ["AccessDeniedError", "VersionConflictError"]


class VersionConflictError(InterlockError):
    """A check-and-set write named a version that is no longer the current one."""

    code = "version_conflict"


class AccessDeniedError(InterlockError):
    """The vault's access policy does not give the client this capability on this path."""

    code = "access_denied"
