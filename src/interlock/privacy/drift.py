"""Drift: the flows the audit trail shows against the flows the manifest declares.

The gateway records one ``gateway.request`` entry per request
(:mod:`interlock.gateway.audit_trail`): the integration whose route matched,
its source and target *system names* and its data categories as declared when
the request was answered, the route label (``details.route``), the caller
(``actor``: ``client:NAME`` or ``anonymous``) and the volume (``records`` is 1
when the request was forwarded, 0 otherwise; ``bytes`` counts request and
response bodies). :func:`find_drift` reads the entries of a window from the
verified log (:func:`interlock.audit.window.read_window`) and reports:

* **undeclared** flows — forwarded requests whose integration, route, client,
  data category, source or target system the current manifest does not declare
  for that integration, and destination countries: the country the entry
  records for the system that received the request (``details.upstream_country``,
  the route's upstream's ``location`` when the request was answered) when it is
  not declared: neither the transfer's destination nor the location of one of
  the integration's systems that needs no transfer (in the EEA, or any for a
  flow without personal data). Entries written before the gateway recorded the
  upstream's country are checked by the target's country they recorded
  (``details.target_country``), older ones by the recorded target's location
  *in the current manifest* (docs/privacy-drift.md). A refused request moved
  no data and makes no finding; it is counted in the volumes.
* **unused** declarations — integrations, routes and allowed clients with no
  forwarded request in the window (candidates for removal under data
  minimisation, GDPR Art. 5(1)(c)); ``certain`` is false when bodies of that
  integration in the window were pruned, since those entries could not be read.
* **volumes** per integration: forwarded, refused, records, bytes, pruned.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy import Engine

from interlock.audit.verify import VerifyReport
from interlock.audit.window import StoredEntry, read_window
from interlock.clock import Clock, utc_now
from interlock.config.manifest import Integration, Manifest
from interlock.gdpr.adequacy import EEA

__all__ = [
    "FORMAT",
    "DriftReport",
    "IntegrationVolume",
    "Undeclared",
    "Unused",
    "analyse",
    "find_drift",
]

FORMAT: Final = "interlock-privacy-drift/1"
_REQUEST: Final = "gateway.request"
_CLIENT: Final = "client:"
_NONE: Final = "(none)"

UndeclaredKind = Literal[
    "integration", "route", "client", "category", "source", "target", "country"
]
UnusedKind = Literal["integration", "route", "client"]
_ORDER: Final = ("integration", "route", "client", "category", "source", "target", "country")


@dataclass(frozen=True)
class Undeclared:
    """A flow seen on the trail that the manifest does not declare for ``integration``."""

    kind: UndeclaredKind
    integration: str
    value: str
    requests: int  # forwarded requests that showed it
    first_seen: str  # entry times, RFC 3339 UTC
    last_seen: str


@dataclass(frozen=True)
class Unused:
    """A declared integration, route or allowed client with no forwarded request."""

    kind: UnusedKind
    integration: str
    value: str
    certain: bool  # False: pruned entries of the integration in the window were not read


@dataclass(frozen=True)
class IntegrationVolume:
    """What went through one integration in the window."""

    integration: str
    declared: bool
    forwarded: int
    refused: int
    records: int
    bytes: int
    pruned: int  # entries whose bodies retention removed: not analysed


@dataclass(frozen=True)
class DriftReport:
    """The drift of a window; :meth:`as_json` is the published shape."""

    since: datetime
    until: datetime
    log: VerifyReport
    analysed: int  # gateway.request entries read
    pruned: int  # entries in the window whose bodies were pruned (not analysed)
    unrouted: int  # requests that matched no integration (no flow)
    undeclared: tuple[Undeclared, ...]
    unused: tuple[Unused, ...]
    volumes: tuple[IntegrationVolume, ...]

    def as_json(self) -> dict[str, Any]:
        """The ``interlock-privacy-drift/1`` document (docs/privacy-drift.md)."""
        return {
            "format": FORMAT,
            "window": {"since": _rfc3339(self.since), "until": _rfc3339(self.until)},
            "log": {"origin": self.log.origin, "size": self.log.size, "verified": True},
            "entries": {
                "analysed": self.analysed,
                "pruned": self.pruned,
                "unrouted": self.unrouted,
            },
            "undeclared": [asdict(u) for u in self.undeclared],
            "unused": [asdict(u) for u in self.unused],
            "volumes": [asdict(v) for v in self.volumes],
        }


def find_drift(
    engine: Engine,
    manifest: Manifest,
    *,
    since: timedelta,
    now: Clock = utc_now,
    witnessed: Iterable[str] = (),
) -> DriftReport:
    """Verify the log in ``engine`` and compare its last ``since`` with ``manifest``.

    Raises :class:`~interlock.audit.errors.AuditVerificationError` when the log
    fails verification: no report is made on a log that cannot be trusted.
    """
    until = now()
    start = until - since
    window = read_window(engine, start, until, witnessed=tuple(witnessed))
    return analyse(window.entries, manifest, start, until, window.verified)


@dataclass
class _Seen:
    requests: int = 0
    first: str = ""
    last: str = ""

    def add(self, time: str) -> None:
        self.requests += 1
        self.first = min(self.first, time) if self.first else time
        self.last = max(self.last, time)


@dataclass
class _Volume:
    forwarded: int = 0
    refused: int = 0
    records: int = 0
    bytes: int = 0
    pruned: int = 0


class _Observer:
    """Folds entries into counts; memory grows with distinct flows, not with entries."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.labels = {n: {r.label for r in f.routes} for n, f in manifest.integrations.items()}
        self.undeclared: dict[tuple[UndeclaredKind, str, str], _Seen] = defaultdict(_Seen)
        self.used: set[tuple[str, str, str]] = set()
        self.volumes: dict[str, _Volume] = defaultdict(_Volume)
        self.analysed = self.pruned = self.unrouted = 0

    def add(self, entry: StoredEntry) -> None:
        fields = entry.fields
        if fields is None:
            self.pruned += 1
            if entry.integration is not None:
                self.volumes[entry.integration].pruned += 1
            return
        if fields.get("action") != _REQUEST:
            return
        self.analysed += 1
        name = fields.get("integration")
        if not isinstance(name, str):
            self.unrouted += 1
            return
        volume = fields.get("volume") or {}
        counts = self.volumes[name]
        records = int(volume.get("records") or 0)
        if records <= 0:  # the gateway records 1 only for a forwarded request
            counts.refused += 1
            return
        counts.forwarded += 1
        counts.records += records
        counts.bytes += int(volume.get("bytes") or 0)
        self._flow(name, fields)

    def _flow(self, name: str, fields: dict[str, Any]) -> None:
        time = str(fields.get("time") or "")
        route = str((fields.get("details") or {}).get("route") or _NONE)
        actor = str(fields.get("actor") or _NONE)
        client = actor.removeprefix(_CLIENT)
        self.used.update({("integration", name, name), ("route", name, route)})
        self.used.add(("client", name, client))
        flow = self.manifest.integrations.get(name)
        if flow is None:  # one finding: its routes, clients and categories follow from it
            self.undeclared["integration", name, name].add(time)
            return
        found: list[tuple[UndeclaredKind, str]] = []
        if route not in self.labels[name]:
            found.append(("route", route))
        if not actor.startswith(_CLIENT) or client not in flow.all_callers:
            found.append(("client", client))
        found.extend(
            ("category", c)
            for c in fields.get("data_categories") or ()
            if c not in flow.data_categories
        )
        source, target = fields.get("source") or _NONE, fields.get("target") or _NONE
        if source != flow.source:
            found.append(("source", source))
        if target != flow.target:
            found.append(("target", target))
        details = fields.get("details") or {}
        recorded = details.get("upstream_country") or details.get("target_country")
        system = self.manifest.systems.get(target)
        country = str(recorded) if recorded else (system.location if system else None)
        if country is not None and country not in self._countries(flow):
            found.append(("country", country))
        for kind, value in found:
            self.undeclared[kind, name, value].add(time)

    def _countries(self, flow: Integration) -> set[str]:
        """Where the flow's data may go: its systems' locations and the transfer's destination.

        A system outside the EEA counts only when the flow carries no personal data:
        with personal data it needs the transfer (GDPR Chapter V, as ``validate``).
        """
        places = {self.manifest.systems[name].location for name in (flow.source, flow.target)}
        declared = {place for place in places if place in EEA or not flow.personal}
        if flow.transfer is not None:
            declared.add(flow.transfer.destination)
        return declared

    def unused(self) -> list[Unused]:
        found: list[Unused] = []
        for name, flow in self.manifest.integrations.items():
            certain = self.volumes[name].pruned == 0 if name in self.volumes else True
            if ("integration", name, name) not in self.used:
                found.append(Unused("integration", name, name, certain))
                continue  # its routes and clients are unused with it
            found.extend(
                Unused("route", name, r.label, certain)
                for r in flow.routes
                if ("route", name, r.label) not in self.used
            )
            found.extend(
                Unused("client", name, c, certain)
                for c in sorted(flow.all_callers)
                if ("client", name, c) not in self.used
            )
        return sorted(found, key=lambda u: (_ORDER.index(u.kind), u.integration, u.value))


def analyse(
    entries: Iterable[StoredEntry],
    manifest: Manifest,
    since: datetime,
    until: datetime,
    log: VerifyReport,
) -> DriftReport:
    """The drift of ``entries`` (read from the verified ``log``) against ``manifest``."""
    observer = _Observer(manifest)
    for entry in entries:
        observer.add(entry)
    undeclared = sorted(
        (
            Undeclared(kind, name, value, seen.requests, seen.first, seen.last)
            for (kind, name, value), seen in observer.undeclared.items()
        ),
        key=lambda u: (_ORDER.index(u.kind), u.integration, u.value),
    )
    names = sorted(set(manifest.integrations) | set(observer.volumes))
    volumes = [
        IntegrationVolume(name, name in manifest.integrations, **asdict(observer.volumes[name]))
        for name in names
    ]
    return DriftReport(
        since,
        until,
        log,
        observer.analysed,
        observer.pruned,
        observer.unrouted,
        tuple(undeclared),
        tuple(observer.unused()),
        tuple(volumes),
    )


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
