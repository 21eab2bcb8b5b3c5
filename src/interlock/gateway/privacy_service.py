"""What the data-subject request API needs of the privacy service: typed protocols.

:class:`interlock.privacy.requests.PrivacyRequests` implements
:class:`PrivacyRequestsApi`; ``interlock.privacy.trace.trace_subject``, bound
to a manifest, the lineage index, its hasher and the audit database, is a
:class:`SubjectTracer`. The API (:mod:`interlock.gateway.privacy_api`) calls
exactly these methods, so a fake implementing them tests it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from interlock.actors import Actor

__all__ = ["PrivacyRequestsApi", "Report", "RequestView", "SubjectTracer"]


class RequestView(Protocol):
    """A data-subject request as the service shows it (never the identifier in clear)."""

    def as_json(self) -> dict[str, Any]:
        """The view as JSON: ``id``, ``kind``, ``status``, ``deadline``, per-system status, ..."""
        ...


class Report(Protocol):
    """Anything answered as JSON: a trace report."""

    def as_json(self) -> dict[str, Any]:
        """The report as JSON."""
        ...


class PrivacyRequestsApi(Protocol):
    """What the API calls of :class:`interlock.privacy.requests.PrivacyRequests` (blocking).

    Arguments passed by position are positional-only here, so the service may
    name them as it likes; keyword arguments are matched by name.
    """

    def create(
        self,
        kind: str,
        subject_kind: str,
        identifier: str,
        /,
        *,
        actor: Actor,
        region: str | None = None,
        corrections: Mapping[str, str] | None = None,
        systems: Iterable[str] | None = None,
    ) -> RequestView:
        """Create a request; ``actor`` is who asked (the API's client)."""
        ...

    def get(self, request_id: str, /) -> RequestView:
        """One request; :class:`~interlock.errors.NotFoundError` if there is none."""
        ...

    def list(self, status: str | None = None, /) -> Sequence[RequestView]:
        """Every request, or those ``open``, ``closed`` or ``overdue``."""
        ...

    def extend(self, request_id: str, /, *, months: int, reason: str, actor: Actor) -> RequestView:
        """Extend the deadline by ``months`` (Art. 12(3)), saying why."""
        ...

    def confirm(
        self, request_id: str, system: str, status: str, /, *, actor: Actor, note: str
    ) -> RequestView:
        """Record an operator's answer for ``system``."""
        ...

    def export_bundle(self, request_id: str, /, *, actor: Actor) -> dict[str, Any]:
        """The Art. 20 bundle of an export request."""
        ...

    def receipt(self, request_id: str, /) -> dict[str, Any] | None:
        """The signed receipt of a closed request; None while it is open."""
        ...

    def run_due(self) -> int:
        """Do the work that is due (ask systems, retry, close); how many steps were taken."""
        ...


class SubjectTracer(Protocol):
    """Who received a person's data: ``trace_subject`` bound to the manifest and the index."""

    def __call__(self, kind: str, identifier: str, region: str | None, /) -> Report:
        """The trace report of the subject ``kind``/``identifier``."""
        ...
