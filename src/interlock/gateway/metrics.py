"""Prometheus metrics of the gateway, in a registry of their own.

Every label has a bounded set of values, fixed by the manifest or by the code,
never by a request: a route label is the route's *template* (``GET
/orders/{id}``, ``/v1/secrets/{name}``) or :data:`UNMATCHED`; a reason is one of
:data:`AUTHENTICATION_FAILURES`; a Redis command is a name our code sends.
Otherwise a client could create label sets at will (a secret's name in a label)
and exhaust the scraper's memory. The metrics are served on a listener of their
own (:mod:`interlock.gateway.metrics_listener`), never on the gateway's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

__all__ = ["AUTHENTICATION_FAILURES", "UNMATCHED", "GatewayMetrics"]

#: The route label of a request no route or own endpoint took (404, 405, 421, a bad path).
UNMATCHED: Final = "unmatched"

#: The refusal codes counted as authentication failures: the ``reason`` label's values.
AUTHENTICATION_FAILURES: Final = frozenset(
    {
        "unauthorized",  # no, a malformed, unknown, expired or revoked credential
        "ambiguous-credentials",
        "credential-in-url",
        "credential-not-accepted",
        "certificate-revoked",
        "certificate-expired",
        "too-many-failed-attempts",  # the address's failure budget is spent
        "invalid_client",  # the token endpoint (RFC 6749 §5.2)
        "slow_down",  # the token endpoint's failure budget
    }
)

_COMMAND: Final = re.compile(r"^[A-Z][A-Z.]{0,31}$")
_FAST: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


@dataclass
class GatewayMetrics:
    """Requests, latency, authentication, tokens, the audit queue, Redis, the process."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self._counters: dict[tuple[str, str, int], Counter] = {}
        self._histograms: dict[str, Histogram] = {}
        registry = self.registry
        # The standard process_*, python_info and python_gc_* families.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)  # registers nothing where gc has no statistics
        self.requests = Counter(
            "interlock_requests",
            "Requests handled, by route template, outcome and status.",
            ["route", "outcome", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "interlock_request_duration_seconds",
            "Time from request to response, by route template.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.authentication_failures = Counter(
            "interlock_authentication_failures",
            "Requests refused for their credential, by reason (the refusal code).",
            ["reason"],
            registry=registry,
        )
        for reason in sorted(AUTHENTICATION_FAILURES):  # present from the start, at 0
            self.authentication_failures.labels(reason)
        self.tokens_issued = Counter(
            "interlock_tokens_issued",
            "Access tokens the token endpoint issued.",
            registry=registry,
        )
        self.audit_queue_depth = Gauge(
            "interlock_audit_queue_depth",
            "Audit entries queued and not yet written.",
            registry=registry,
        )
        self.audit_lost = Gauge(
            "interlock_audit_entries_lost",
            "Best-effort audit entries dropped (queue full) or lost to a failed batch since start.",
            registry=registry,
        )
        self.lineage_queue_depth = Gauge(
            "interlock_lineage_queue_depth",
            "Requests whose lineage records are queued and not yet written.",
            registry=registry,
        )
        self.lineage_lost = Gauge(
            "interlock_lineage_records_lost",
            "Lineage records dropped (queue full) or lost to a failed batch since start.",
            registry=registry,
        )
        self.redis_latency = Histogram(
            "interlock_redis_command_duration_seconds",
            "Time a Redis command took (limits, replay, idempotency, revocations), by command.",
            ["command"],
            buckets=_FAST,
            registry=registry,
        )
        self.certificate_expiry = Gauge(
            "interlock_certificate_expiry_timestamp_seconds",
            "When a certificate the gateway uses or trusts expires (Unix time).",
            ["certificate"],
            registry=registry,
        )
        self.rate_limit_backend_failures = Counter(
            "interlock_rate_limit_backend_failures",
            "Rate-limit decisions the shared backend (Redis) failed, by failure policy.",
            ["policy"],
            registry=registry,
        )
        self.rate_limit_backend_up = Gauge(
            "interlock_rate_limit_backend_up",
            "1 while the shared rate-limit backend answers, 0 after it failed.",
            registry=registry,
        )
        self.manifest_version = Gauge(
            "interlock_manifest_version",
            "The stored manifest version this process enforces (0: a local file).",
            registry=registry,
        )
        self.manifest_info = Gauge(
            "interlock_manifest_info",
            "1 for the manifest this process enforces, by source and SHA-256 of its text.",
            ["source", "sha256"],
            registry=registry,
        )
        self.manifest_current = Gauge(
            "interlock_manifest_current",
            "1 while the manifest enforced is the current one; 0 while traffic is refused.",
            registry=registry,
        )
        self.manifest_reload_failures = Counter(
            "interlock_manifest_reload_failures",
            "Manifest reloads refused (file) or versions and polls that failed (store).",
            ["source"],
            registry=registry,
        )
        for source in ("file", "store"):  # present from the start, at 0
            self.manifest_reload_failures.labels(source)
        self.upstream_errors = Counter(
            "interlock_upstream_errors",
            "Failed upstream calls, by system and kind.",
            ["system", "kind"],
            registry=registry,
        )

    def observe(self, route: str, outcome: str, status: int, seconds: float) -> None:
        """Record one finished request (``route``: a template or :data:`UNMATCHED`)."""
        # Label look-ups cost more than the increments; children are cached (the
        # label sets are bounded: route templates x outcomes x statuses).
        key = (route, outcome, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.requests.labels(route, outcome, str(status))
        histogram = self._histograms.get(route)
        if histogram is None:
            histogram = self._histograms[route] = self.latency.labels(route)
        counter.inc()
        histogram.observe(seconds)

    def refused(self, code: str) -> None:
        """A request was refused with ``code``: counted if it is an authentication failure."""
        if code in AUTHENTICATION_FAILURES:
            self.authentication_failures.labels(code).inc()

    def token_issued(self) -> None:
        """The token endpoint issued an access token."""
        self.tokens_issued.inc()

    def watch_audit(self, depth: Callable[[], int], lost: Callable[[], int]) -> None:
        """Read the audit writer's queue depth and lost best-effort entries at every scrape."""
        self.audit_queue_depth.set_function(depth)
        self.audit_lost.set_function(lost)

    def watch_lineage(self, depth: Callable[[], int], lost: Callable[[], int]) -> None:
        """Read the lineage writer's queue depth and lost records at every scrape."""
        self.lineage_queue_depth.set_function(depth)
        self.lineage_lost.set_function(lost)

    def redis_command(self, command: str, seconds: float) -> None:
        """A Redis command took ``seconds`` (successful or not)."""
        name = command.upper()
        self.redis_latency.labels(name if _COMMAND.match(name) else "OTHER").observe(seconds)

    def backend_failed(self, mode: str) -> None:
        """A rate-limit decision failed at the shared backend (``mode``: closed or open)."""
        self.rate_limit_backend_failures.labels(mode).inc()

    def backend_up(self, up: bool) -> None:
        """The shared rate-limit backend went down or came back."""
        self.rate_limit_backend_up.set(1 if up else 0)

    def manifest(self, source: str, version: int | None, sha256: str, *, current: bool) -> None:
        """The manifest enforced (one label set at a time: the hash is the operator's)."""
        self.manifest_info.clear()
        self.manifest_info.labels(source, sha256).set(1)
        self.manifest_version.set(version or 0)
        self.manifest_current.set(1 if current else 0)

    def manifest_reload_failed(self, source: str) -> None:
        """A reload (file) or a version or poll (store) that failed; the old one is kept."""
        self.manifest_reload_failures.labels(source).inc()

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
