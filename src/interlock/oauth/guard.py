"""The hook through which the rate limits slow down secret guessing.

The token, revocation and introspection endpoints ask the guard before they
check a client's credentials and tell it about every failure. The gateway
always passes :class:`interlock.limits.FailureGuard`
(``gateway/assembly.py``), which limits failures per (client id, source
address) and per source address, across replicas when Redis is configured;
:class:`NoGuard`, which admits everything, is only the default of a
:class:`~interlock.oauth.token_endpoint.TokenEndpoint` built without one.
A guard must never
refuse a client because of failures that came from somewhere else: a budget
per client id alone would let anyone who knows the id lock it out.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["AttemptGuard", "NoGuard"]


class AttemptGuard(Protocol):
    """Admission control for client authentication attempts."""

    @property
    def blocking(self) -> bool:
        """Whether the guard may do I/O (then it is never consulted on an event loop)."""
        ...

    def retry_after(self, client_id: str | None, remote: str | None) -> float | None:
        """Seconds the caller must wait, or ``None`` to let the attempt proceed."""
        ...

    def failed(self, client_id: str | None, remote: str | None) -> None:
        """Record a failed authentication attempt."""
        ...


class NoGuard:
    """Admits every attempt: for a token endpoint used without the gateway's failure budget."""

    blocking = False

    def retry_after(self, client_id: str | None, remote: str | None) -> float | None:
        """Never asks the caller to wait."""
        return None

    def failed(self, client_id: str | None, remote: str | None) -> None:
        """Records nothing."""
