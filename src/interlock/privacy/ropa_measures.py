"""Art. 30(1)(g) / Art. 32: the security measures of an integration, from its configured controls.

Each :class:`Measure` says what is enforced and where it is configured (a
manifest path such as ``integrations.order-sync.routes[0].rate_limit``, or a
setting name), so a reader of the register can check it against the file the
gateway enforces. The measures the manifest declares in ``security_measures``
come last, marked as declared: the gateway does not enforce those itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from interlock.config.units import format_duration

if TYPE_CHECKING:
    from interlock.config.manifest import Integration, Manifest, Route

__all__ = ["Measure", "measures"]

MeasureKind = Literal[
    "tls",
    "authentication",
    "authorisation",
    "minimisation",
    "validation",
    "rate_limit",
    "replay_protection",
    "audit",
    "encryption_at_rest",
    "payload_encryption",
    "dead_letters",
    "declared",
]


@dataclass(frozen=True)
class Measure:
    """One technical or organisational measure and where it is configured."""

    kind: MeasureKind
    description: str
    configured_at: str


def measures(
    manifest: Manifest,
    name: str,
    flow: Integration,
    kek_backend: str,
    type_measures: Iterable[Measure] = (),
) -> tuple[Measure, ...]:
    """Every measure configured for integration ``name``, then its declared ones.

    ``type_measures`` are those of the integration's type beyond routes (its
    messages: :mod:`interlock.privacy.ropa_messaging`).
    """
    return (
        *_tls(manifest, flow),
        *_authentication(manifest, name, flow),
        *(m for i, route in enumerate(flow.routes) for m in _route(name, i, route)),
        *type_measures,
        _audit(name, flow),
        Measure(
            "encryption_at_rest",
            "credentials and keys in the store sealed (envelope encryption, AES-256-GCM) "
            f"under a key-encryption key held by the {kek_backend} backend",
            "INTERLOCK_KEK_BACKEND",
        ),
        *(
            Measure("declared", text, f"integrations.{name}.security_measures[{i}]")
            for i, text in enumerate(flow.security_measures)
        ),
    )


def _tls(manifest: Manifest, flow: Integration) -> Iterator[Measure]:
    upstreams = dict.fromkeys([flow.source, flow.target, *(r.upstream for r in flow.routes)])
    for system_name in upstreams:
        system = manifest.systems.get(system_name)
        if system is not None and system.tls is not None:
            floor, where = system.tls.min_version, f"systems.{system_name}.tls.min_version"
        else:
            floor, where = manifest.tls.min_version, "tls.min_version"
        yield Measure(
            "tls",
            f"TLS {floor} or later, certificates verified, to and from {system_name}",
            where,
        )


def _authentication(manifest: Manifest, name: str, flow: Integration) -> Iterator[Measure]:
    for client_name in dict.fromkeys([flow.client, *flow.callers]):
        client = manifest.clients.get(client_name)
        if client is None:
            continue
        yield Measure(
            "authentication",
            f"client {client_name} authenticates with {', '.join(client.auth)}",
            f"clients.{client_name}.auth",
        )
    if not flow.routes:
        return  # messaging and event streams say who may read in their own measures
    who = ", ".join(dict.fromkeys([flow.client, *flow.callers]))
    where = f"integrations.{name}.callers" if flow.callers else f"integrations.{name}.client"
    yield Measure("authorisation", f"only {who} may call this integration's routes", where)


def _route(name: str, index: int, route: Route) -> Iterator[Measure]:
    at = f"integrations.{name}.routes[{index}]"
    what = f"{route.method} {route.path}"
    yield Measure("authorisation", f"{what} requires scope {route.scope}", f"{at}.scope")
    if route.auth is not None:
        methods = ", ".join(route.auth)
        yield Measure("authentication", f"{what} accepts only {methods}", f"{at}.auth")
    for key in ("response_fields", "request_fields"):
        fields = getattr(route, key)
        if fields is not None:
            direction = "returned" if key == "response_fields" else "forwarded"
            yield Measure(
                "minimisation",
                f"{what}: only {', '.join(fields)} {direction}; other fields removed",
                f"{at}.{key}",
            )
    yield from _validation(at, what, route)
    if route.rate_limit is not None:
        limits = route.rate_limit.model_dump(exclude_none=True, mode="json")
        shown = ", ".join(f"{k} {v}" for k, v in limits.items())
        yield Measure("rate_limit", f"{what}: {shown}", f"{at}.rate_limit")
    if route.replay is not None:
        yield Measure(
            "replay_protection",
            f"{what}: signed requests, nonce {route.replay.nonce}, window "
            f"{format_duration(route.replay.window)}",
            f"{at}.replay",
        )
    if route.idempotency is not None:
        yield Measure(
            "replay_protection",
            f"{what}: Idempotency-Key {route.idempotency}",
            f"{at}.idempotency",
        )


def _validation(at: str, what: str, route: Route) -> Iterator[Measure]:
    if route.request_schema is not None:
        yield Measure(
            "validation", f"{what}: body checked against a JSON Schema", f"{at}.request_schema"
        )
    if route.params:
        yield Measure(
            "validation", f"{what}: typed path parameters {', '.join(route.params)}", f"{at}.params"
        )
    if route.query:
        yield Measure(
            "validation",
            f"{what}: only query parameters {', '.join(route.query)}, typed",
            f"{at}.query",
        )
    if route.rules:
        yield Measure(
            "validation", f"{what}: business rules {', '.join(route.rules)}", f"{at}.rules"
        )


def _audit(name: str, flow: Integration) -> Measure:
    # The gateway's own rule (Integration.audit_required), not a copy of it.
    mode = "required" if flow.audit_required else "best_effort"
    where = f"integrations.{name}.audit"
    if flow.audit is None:
        where += f" (default: {mode}, from the data categories)"
    detail = (
        "every request recorded in the tamper-evident audit log; data is not released "
        "when its entry cannot be made durable"
        if mode == "required"
        else "every request recorded in the tamper-evident audit log (best effort)"
    )
    return Measure("audit", f"audit {mode}: {detail}", where)
