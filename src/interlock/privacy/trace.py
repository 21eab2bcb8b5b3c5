"""``interlock privacy trace``: every system that received a person's data, and on what terms.

:func:`trace_subject` hashes the (normalised) identifier with the lineage key,
reads the person's rows from the lineage index in one indexed query, and
answers, per receiving system, what GDPR Art. 15 asks the controller to tell
the data subject about each recipient:

* when (first and last time, how many requests), through which integrations
  and routes, in which direction, and from which system the data came
  (Art. 15(1)(g));
* the purposes, legal bases, categories of data and of data subjects, and
  recipients the manifest declares for those integrations (Art. 15(1)(a)-(c));
* the storage period: the integration's retention (Art. 15(1)(d));
* where the system is (per the manifest now, and as recorded when the data
  went there) and, for a third country, the transfer and its safeguard
  (Art. 15(2), Art. 46);
* the person's rights to rectification, erasure, restriction and objection
  (Art. 15(1)(e)) and to lodge a complaint with a supervisory authority
  (Art. 15(1)(f)), as statements;
* that Interlock takes no automated decision about the person (Art. 15(1)(h));
* the indexes of the audit entries of those requests and, given the audit
  database, the entries with RFC 9162 inclusion proofs against the newest
  signed tree head (:func:`interlock.audit.evidence.evidence_for`), which
  anyone can check offline with :mod:`interlock.sdk.audit`.

A person never seen gets a report of the same shape with no systems: the
same work is done up to and including the query (the hash is computed and
the same single query runs), so the answer's timing says little more than its
content. The identifier itself is never part of the report.

JSON shape (:meth:`TraceReport.as_json`, ``"version": 1``)::

    {"version": 1, "generated_at": "...Z", "kind": "email",
     "subject": "<hex keyed hash>", "found": true,
     "rights": "...", "complaint": "...", "automated_decision_making": "...",
     "systems": [{"system", "declared", "owner", "location", "countries",
                  "first_seen", "last_seen", "requests", "kinds", "directions",
                  "categories", "received_from",
                  "integrations": [{"integration", "declared", "source", "target",
                                    "routes", "directions", "categories",
                                    "first_seen", "last_seen", "requests",
                                    "purpose", "legal_basis", "legal_basis_article",
                                    "data_subjects", "recipients", "retention",
                                    "role", "other_party"}],
                  "transfers": [{"integration", "destination", "safeguard",
                                 "article", "decision", "dpf_certified",
                                 "derogation"}],
                  "audit_entries": [index, ...]}],
     "evidence": {"checkpoint", "size", "entries": [...]} | null}
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Engine

from interlock.audit.errors import AuditError
from interlock.audit.evidence import Evidence, evidence_for
from interlock.clock import Clock, utc_now
from interlock.config.manifest import Integration, Manifest
from interlock.config.units import format_duration
from interlock.errors import InvalidRequestError, did_you_mean
from interlock.privacy.lineage import LineageIndex, LineageRecord, SubjectHasher
from interlock.privacy.ropa import Transfer, declared_transfers, legal_basis_article

__all__ = [
    "AUTOMATED_DECISIONS",
    "COMPLAINT",
    "RIGHTS",
    "TRACE_VERSION",
    "IntegrationTrace",
    "SystemTrace",
    "TraceReport",
    "UnknownKindError",
    "check_kind",
    "declared_kinds",
    "trace_subject",
]

TRACE_VERSION: Final = 1
RIGHTS: Final = (
    "The person may ask the controller to rectify (GDPR Art. 16) or erase (Art. 17) their "
    "personal data or to restrict its processing (Art. 18), and may object to the "
    "processing (Art. 21) (GDPR Art. 15(1)(e)); interlock privacy request rectify or erase "
    "carries such a request to every system listed."
)
COMPLAINT: Final = (
    "The person may lodge a complaint with a supervisory authority (GDPR Art. 77), in "
    "particular in the Member State of their habitual residence, place of work or place of "
    "the alleged infringement (GDPR Art. 15(1)(f))."
)
AUTOMATED_DECISIONS: Final = (
    "Interlock makes no automated decision, profiling included (GDPR Art. 22), about the "
    "persons whose data it carries; it records where the data went (GDPR Art. 15(1)(h))."
)


class UnknownKindError(InvalidRequestError):
    """An identifier kind no ``subjects`` locator of the manifest declares."""

    code = "unknown_kind"


def declared_kinds(manifest: Manifest) -> frozenset[str]:
    """The identifier kinds the manifest's ``subjects`` locators name (integrations and routes)."""
    return frozenset(
        locator.kind
        for integration in manifest.integrations.values()
        for locator in (
            *integration.subjects,
            *(x for route in integration.routes for x in route.subjects),
        )
    )


def check_kind(manifest: Manifest, kind: str) -> None:
    """Raise :class:`UnknownKindError` (naming the declared kinds) unless a locator declares it."""
    kinds = declared_kinds(manifest)
    if kind not in kinds:
        hint = did_you_mean(kind, kinds) or f" (declared: {', '.join(sorted(kinds)) or 'none'})"
        raise UnknownKindError(
            f"no subjects locator in the manifest declares the kind {kind!r}{hint}"
        )


@dataclass(frozen=True)
class IntegrationTrace:
    """The person's data through one integration to one system, and the declared terms."""

    integration: str
    declared: bool  # False: no longer in the manifest (the recorded facts remain)
    source: str
    target: str
    routes: tuple[str, ...]
    directions: tuple[str, ...]
    categories: tuple[str, ...]  # as recorded when the data moved
    first_seen: datetime
    last_seen: datetime
    requests: int
    purpose: str | None
    legal_basis: str | None
    legal_basis_article: str | None
    data_subjects: tuple[str, ...]
    recipients: tuple[str, ...]
    retention: str | None  # ISO 8601 duration
    role: str | None
    other_party: str | None

    def as_json(self) -> dict[str, Any]:
        """This integration's part of the report."""
        return {
            "integration": self.integration,
            "declared": self.declared,
            "source": self.source,
            "target": self.target,
            "routes": list(self.routes),
            "directions": list(self.directions),
            "categories": list(self.categories),
            "first_seen": _stamp(self.first_seen),
            "last_seen": _stamp(self.last_seen),
            "requests": self.requests,
            "purpose": self.purpose,
            "legal_basis": self.legal_basis,
            "legal_basis_article": self.legal_basis_article,
            "data_subjects": list(self.data_subjects),
            "recipients": list(self.recipients),
            "retention": self.retention,
            "role": self.role,
            "other_party": self.other_party,
        }


@dataclass(frozen=True)
class SystemTrace:
    """One system that received the person's data."""

    system: str
    declared: bool
    owner: str | None
    location: str | None  # per the manifest now
    countries: tuple[str, ...]  # as recorded when the data went there
    first_seen: datetime
    last_seen: datetime
    requests: int
    kinds: tuple[str, ...]
    directions: tuple[str, ...]
    categories: tuple[str, ...]
    received_from: tuple[str, ...]  # Art. 15(1)(g): the systems the data came from
    integrations: tuple[IntegrationTrace, ...]
    transfers: tuple[tuple[str, Transfer], ...]  # (integration, declared transfer)
    audit_entries: tuple[int, ...]

    def as_json(self) -> dict[str, Any]:
        """This system's part of the report."""
        return {
            "system": self.system,
            "declared": self.declared,
            "owner": self.owner,
            "location": self.location,
            "countries": list(self.countries),
            "first_seen": _stamp(self.first_seen),
            "last_seen": _stamp(self.last_seen),
            "requests": self.requests,
            "kinds": list(self.kinds),
            "directions": list(self.directions),
            "categories": list(self.categories),
            "received_from": list(self.received_from),
            "integrations": [i.as_json() for i in self.integrations],
            "transfers": [
                {
                    "integration": name,
                    "destination": t.destination,
                    "safeguard": t.safeguard,
                    "article": t.article,
                    "decision": t.decision,
                    "dpf_certified": t.dpf_certified,
                    "derogation": t.derogation,
                }
                for name, t in self.transfers
            ],
            "audit_entries": list(self.audit_entries),
        }


@dataclass(frozen=True)
class TraceReport:
    """Every system that received data about one person (empty when never seen)."""

    kind: str
    subject: bytes = field(repr=False)  # the keyed hash, never the identifier
    generated_at: datetime
    systems: tuple[SystemTrace, ...]
    evidence: Evidence | None

    @property
    def found(self) -> bool:
        """Whether any system received the person's data (within retention)."""
        return bool(self.systems)

    def as_json(self) -> dict[str, Any]:
        """The report as JSON (shape in the module docstring)."""
        return {
            "version": TRACE_VERSION,
            "generated_at": _stamp(self.generated_at),
            "kind": self.kind,
            "subject": self.subject.hex(),
            "found": self.found,
            "rights": RIGHTS,
            "complaint": COMPLAINT,
            "automated_decision_making": AUTOMATED_DECISIONS,
            "systems": [s.as_json() for s in self.systems],
            "evidence": self.evidence.as_json() if self.evidence is not None else None,
        }


def trace_subject(  # noqa: PLR0917  (the shared interface: what a trace reads)
    manifest: Manifest,
    lineage: LineageIndex,
    hasher: SubjectHasher,
    audit_engine: Engine | None,
    kind: str,
    identifier: str,
    *,
    now: Clock = utc_now,
) -> TraceReport:
    """The trace of the person whose ``identifier`` (of ``kind``) is given, normalised.

    ``identifier`` must already be in canonical form
    (:func:`interlock.gdpr.identifiers.normalise`), or it will not match.
    Raises :class:`UnknownKindError` for a kind no locator declares, and
    :class:`~interlock.audit.errors.AuditError` when the audit entries cannot
    be proven (``audit_engine`` given; ``None``: indexes only, no proofs).
    """
    check_kind(manifest, kind)
    subject = hasher.digest(kind, identifier)
    rows = lineage.find(subject)  # the one indexed query; also for a person never seen
    systems = tuple(_system(manifest, name, mine) for name, mine in _by(rows, "receiver"))
    indexes = sorted({r.audit_index for r in rows if r.audit_index is not None})
    return TraceReport(kind, subject, now(), systems, _evidence(audit_engine, indexes))


def _evidence(engine: Engine | None, indexes: list[int]) -> Evidence | None:
    if engine is None:
        return None
    try:
        return evidence_for(engine, indexes)
    except AuditError:
        if indexes:
            raise
        return None  # a log without a signed tree head yet, and nothing to prove


def _by(rows: Iterable[LineageRecord], attribute: str) -> list[tuple[str, list[LineageRecord]]]:
    """``rows`` grouped by ``attribute``, groups in order of first appearance (time order)."""
    groups: dict[str, list[LineageRecord]] = {}
    for row in rows:
        groups.setdefault(getattr(row, attribute), []).append(row)
    return list(groups.items())


def _ordered(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(sorted({v for v in values if v is not None}))


def _origin(row: LineageRecord) -> str:
    """Where the data came from: the integration's other end, seen from the receiver."""
    return row.source if row.receiver == row.target else row.target


def _system(manifest: Manifest, name: str, rows: list[LineageRecord]) -> SystemTrace:
    system = manifest.systems.get(name)
    integrations = tuple(
        _integration(manifest.integrations.get(flow), flow, mine)
        for flow, mine in _by(rows, "integration")
    )
    location = system.location if system is not None else None
    countries = _ordered(r.receiver_country for r in rows)
    places = {*countries, *([location] if location is not None else [])}
    transfers = tuple(
        (flow, transfer)
        for flow in sorted({r.integration for r in rows})
        if (declared := manifest.integrations.get(flow)) is not None
        for transfer in declared_transfers(flow, declared)
        if transfer.destination in places
    )
    return SystemTrace(
        system=name,
        declared=system is not None,
        owner=system.owner if system is not None else None,
        location=location,
        countries=countries,
        first_seen=rows[0].time,
        last_seen=rows[-1].time,
        requests=len({(r.audit_index, r.correlation_id) for r in rows}),
        kinds=_ordered(r.kind for r in rows),
        directions=_ordered(r.direction for r in rows),
        categories=_ordered(c for r in rows for c in r.categories),
        received_from=_ordered(_origin(r) for r in rows),
        integrations=integrations,
        transfers=transfers,
        audit_entries=tuple(sorted({r.audit_index for r in rows if r.audit_index is not None})),
    )


def _integration(
    declared: Integration | None, name: str, rows: list[LineageRecord]
) -> IntegrationTrace:
    last = rows[-1]
    return IntegrationTrace(
        integration=name,
        declared=declared is not None,
        source=declared.source if declared is not None else last.source,
        target=declared.target if declared is not None else last.target,
        routes=_ordered(r.route for r in rows),
        directions=_ordered(r.direction for r in rows),
        categories=_ordered(c for r in rows for c in r.categories),
        first_seen=rows[0].time,
        last_seen=last.time,
        requests=len({(r.audit_index, r.correlation_id) for r in rows}),
        purpose=declared.purpose if declared is not None else None,
        legal_basis=declared.legal_basis if declared is not None else None,
        legal_basis_article=(
            legal_basis_article(declared.legal_basis) if declared is not None else None
        ),
        data_subjects=tuple(declared.data_subjects) if declared is not None else (),
        recipients=tuple(declared.recipients) if declared is not None else (),
        retention=format_duration(declared.retention) if declared is not None else None,
        role=declared.role if declared is not None else None,
        other_party=declared.other_party if declared is not None else None,
    )


def _stamp(value: datetime) -> str:
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")
