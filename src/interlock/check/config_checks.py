"""The checklist from configuration alone: one finding per integration and item.

Each check reads the validated manifest (never the raw YAML) and says what it
read (``evidence``), where to fix it (the manifest line, from the YAML source
map when there is one) and how. Where the manifest's own validation already
refuses the dangerous form (``http://`` upstreams, ``ca: none``, secrets
written inline, TLS below 1.2), the item passes *by construction* and the
reason says so; what configuration cannot show (the KEK backend, the answers
of a running gateway) is ``needs_evidence`` until ``--live`` supplies it.
An integration without routes (another integration type) is never a silent
pass: its route-level items are ``needs_evidence`` or ``not_applicable``.

Decisions recorded here (docs/check.md repeats them):

* authentication: every route authenticates by construction; a route that
  carries special-category data (GDPR Art. 9/10) and accepts only API keys
  (bearer secrets without proof of possession) fails: use oauth2 and/or mtls.
* minimisation: reads (GET) of personal-data integrations need
  ``response_fields``; writes (POST/PUT/PATCH) need ``request_fields`` or a
  closed ``request_schema`` (``additionalProperties: false``).
* least_privilege reuses ``interlock validate``'s findings
  (:func:`interlock.config.checks.cross_check`) for the roles the
  integration's clients hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from interlock.check.items import ITEMS
from interlock.check.results import Finding, Location, Status
from interlock.config.checks import Entities, PrivacyFacts, cross_check
from interlock.config.loader import format_path
from interlock.config.manifest import Integration, Manifest, Route, media_kind
from interlock.config.yaml_source import DocPath, YamlDocument
from interlock.gdpr.taxonomy import special_kind
from interlock.privacy.ropa import build_register

__all__ = ["BODY_METHODS", "check_configuration", "personal"]

BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
"""Methods whose requests carry a body the gateway validates and may minimise."""


class _Context:
    """What every item check needs: the manifest, the integration, and where things are."""

    def __init__(
        self,
        manifest: Manifest,
        name: str,
        source_map: YamlDocument | None,
        file: str,
        warnings: list[tuple[DocPath, str]],
    ) -> None:
        self.manifest = manifest
        self.warnings = warnings
        self.name = name
        self.flow: Integration = manifest.integrations[name]
        self._map = source_map
        self._file = file

    def at(self, *path: str | int) -> Location:
        """The manifest location of ``integrations.NAME.<path>`` (or its nearest ancestor)."""
        return self.locate(("integrations", self.name, *path))

    def locate(self, path: DocPath) -> Location:
        """The location of any manifest path; line 1 without a source map."""
        if self._map is None:
            return Location(self._file, 1, 1)
        line, column = self._map.position(path, key=True)
        return Location(self._file, line, column)

    def finding(  # noqa: PLR0917  (the parts of a finding)
        self,
        item: str,
        status: Status,
        reason: str,
        evidence: tuple[str, ...] | list[str] = (),
        location: Location | None = None,
        fix: str | None = None,
    ) -> Finding:
        return Finding(
            item=item,
            integration=self.name,
            status=status,
            reason=reason,
            evidence=tuple(evidence),
            location=location or self.at(),
            fix=fix,
        )

    def routes(self) -> Iterator[tuple[int, Route]]:
        return enumerate(self.flow.routes)


def personal(flow: Integration) -> bool:
    """Whether the integration declares personal data (a ``user.*`` category)."""
    return any(category.startswith("user") for category in flow.data_categories)


def check_configuration(
    manifest: Manifest, source_map: YamlDocument | None, manifest_path: Path | str
) -> list[Finding]:
    """Every integration of ``manifest`` against every item of :data:`ITEMS`, in order.

    ``source_map`` locates findings on manifest lines (None: line 1 of the file).
    """
    file = str(manifest_path)
    warnings = _validate_warnings(manifest)
    findings: list[Finding] = []
    for name in manifest.integrations:
        context = _Context(manifest, name, source_map, file, warnings)
        findings.extend(_CHECKS[entry.id](context) for entry in ITEMS)
    return findings


# -- authentication, least privilege, secrets, TLS, certificates --------------------------


def _route_methods(context: _Context, route: Route) -> tuple[str, ...]:
    client = context.manifest.clients.get(context.flow.client)
    return route.auth or (client.auth if client is not None else ())


def _authentication(context: _Context) -> Finding:
    flow = context.flow
    if not flow.routes:
        return _no_routes(context, "authentication", "how each side authenticates the other")
    evidence = [f"{r.label}: {', '.join(_route_methods(context, r))}" for r in flow.routes]
    special = [c for c in flow.data_categories if special_kind(c) is not None]
    weak = [(i, r) for i, r in context.routes() if set(_route_methods(context, r)) == {"api_key"}]
    if special and weak:
        index, route = weak[0]
        return context.finding(
            "authentication",
            "fail",
            f"{', '.join(r.label for _, r in weak)} carry special-category data "
            f"({', '.join(special)}) but accept only API keys, bearer secrets without proof "
            "of possession",
            evidence,
            context.at("routes", index, "auth") if route.auth else context.at("client"),
            f"let client {flow.client!r} use oauth2 and/or mtls (auth: [oauth2, mtls]) and "
            "require them on these routes",
        )
    note = (
        f"; {len(weak)} route(s) accept only API keys (oauth2 with mtls is stronger)"
        if weak
        else ""
    )
    return context.finding(
        "authentication",
        "pass",
        "every route requires an authenticated client (the gateway has no anonymous routes)" + note,
        evidence,
        context.at("client"),
    )


def _least_privilege(context: _Context) -> Finding:
    manifest, flow = context.manifest, context.flow
    clients = sorted(c for c in flow.all_callers if c in manifest.clients)
    roles = {role for c in clients for role in manifest.clients[c].roles}
    held = sorted({s for r in roles if r in manifest.roles for s in manifest.roles[r].scopes})
    needed = sorted({route.scope for route in flow.routes})
    evidence = [f"client {c} roles [{', '.join(manifest.clients[c].roles)}]" for c in clients] + [
        f"scopes held: {', '.join(held) or 'none'}",
        f"scopes required: {', '.join(needed) or 'none'}",
    ]
    mine = [
        (path, message)
        for path, message in context.warnings
        if len(path) > 1 and path[0] == "roles" and path[1] in roles
    ]
    if mine:
        path, message = mine[0]
        return context.finding(
            "least_privilege",
            "fail",
            f"{format_path(path)}: {message}"
            + (f" (and {len(mine) - 1} more)" if len(mine) > 1 else ""),
            [*evidence, *(f"{format_path(p)}: {m}" for p, m in mine[1:])],
            context.locate(path),
            "remove the unused scope from the role, or split the role so each client holds "
            "only what its integration's routes require",
        )
    if not flow.routes:
        return _no_routes(
            context, "least_privilege", "the service account's database or broker grants"
        )
    return context.finding(
        "least_privilege",
        "pass",
        "every scope the integration's clients hold is required by some route "
        "(interlock validate's least-privilege checks found nothing)",
        evidence,
        context.at("client"),
    )


def _systems(context: _Context) -> list[str]:
    flow = context.flow
    names = [flow.source, flow.target, *(r.upstream for r in flow.routes)]
    return [n for n in dict.fromkeys(names) if n in context.manifest.systems]


def _secrets_manager(context: _Context) -> Finding:
    systems = context.manifest.systems
    evidence, bare = [], []
    for name in _systems(context):
        system = systems[name]
        if system.credentials is not None:
            evidence.append(f"system {name}: credentials {system.credentials}")
        elif system.client_cert is not None:
            evidence.append(f"system {name}: client certificate {system.client_cert} (no secret)")
        else:
            bare.append(name)
            evidence.append(f"system {name}: no outbound credential declared")
    if bare:
        return context.finding(
            "secrets_manager",
            "needs_evidence",
            f"{', '.join(bare)} declare(s) no outbound credential: either the system accepts "
            "Interlock unauthenticated or its credential lives somewhere Interlock cannot see",
            evidence,
            context.locate(("systems", bare[0])),
            f"add credentials: secret://{bare[0]}/... (interlock secrets put {bare[0]}/...) or "
            "client_cert: pki:auto, or waive with the reason the system needs none",
        )
    return context.finding(
        "secrets_manager",
        "pass",
        "every outbound credential is a secret:// reference resolved from the vault "
        "(inline secrets are refused by validation)",
        evidence,
        context.locate(("systems", _systems(context)[0])) if _systems(context) else None,
    )


def _tls_required(context: _Context) -> Finding:
    manifest = context.manifest
    evidence, floors = [], []
    for name in _systems(context):
        system = manifest.systems[name]
        floor = (system.tls or manifest.tls).min_version
        floors.append(floor)
        evidence.append(f"system {name}: {system.url} TLS >= {floor}")
    evidence.append(f"gateway listener: TLS >= {manifest.tls.min_version}")
    older = "" if all(f == "1.3" for f in floors) else "; TLS 1.3 is preferred where peers allow it"
    return context.finding(
        "tls_required",
        "pass",
        "every system is reached over https:// with TLS 1.2 or later (plain http and older "
        "versions are refused by validation)" + older,
        evidence,
        context.locate(("tls",)),
        None if not older else "set tls: {min_version: '1.3'} on systems that support it",
    )


def _certificates_validated(context: _Context) -> Finding:
    systems = context.manifest.systems
    evidence = []
    for name in _systems(context):
        system = systems[name]
        anchor = "the operating system's public CAs" if system.ca == "system" else system.ca
        mutual = ", client certificate pki:auto" if system.client_cert else ""
        evidence.append(f"system {name}: trust anchor {anchor}{mutual}")
    return context.finding(
        "certificates_validated",
        "pass",
        "every system's certificate is verified against a named trust anchor with its host "
        "name checked (verification cannot be switched off in the manifest); --live probes "
        "the chains and expiry",
        evidence,
        context.locate(("systems", _systems(context)[0], "ca")) if _systems(context) else None,
    )


def _encryption_at_rest(context: _Context) -> Finding:
    return context.finding(
        "encryption_at_rest",
        "needs_evidence",
        "the key-encryption key's backend (keyring file or HSM) is a property of the "
        "deployment, not of the manifest",
        ("configuration: stored credentials, secrets and records are sealed with the keyring",),
        None,
        "run interlock check --live on the deployment (confirms the KEK backend and that "
        "stored data is sealed)",
    )


# -- minimisation, validation, rate limits, errors --------------------------------------


def _closed_schema(route: Route) -> bool:
    schema = route.request_schema
    return schema is not None and schema.get("additionalProperties") is False


def _minimisation(context: _Context) -> Finding:
    flow = context.flow
    if not flow.routes:
        return _no_routes(context, "minimisation", "which fields the flow passes")
    if not personal(flow):
        return context.finding(
            "minimisation",
            "not_applicable",
            "the integration declares no personal data (no user.* category)",
            (f"data_categories: {', '.join(flow.data_categories) or 'none'}",),
            context.at("data_categories"),
        )
    evidence, missing = [], []
    for index, route in context.routes():
        if route.method == "GET":
            if route.response_fields is None:
                missing.append((index, route, "response_fields"))
            else:
                evidence.append(f"{route.label}: response_fields ({len(route.response_fields)})")
        elif route.method in BODY_METHODS:
            if route.request_fields is not None:
                evidence.append(f"{route.label}: request_fields ({len(route.request_fields)})")
            elif _closed_schema(route):
                evidence.append(f"{route.label}: closed request_schema")
            else:
                missing.append((index, route, "request_fields"))
    if missing:
        index, _, field = missing[0]
        return context.finding(
            "minimisation",
            "fail",
            "routes carrying personal data pass every field: "
            + ", ".join(f"{r.label} has no {f}" for _, r, f in missing),
            evidence,
            context.at("routes", index),
            f"list the fields the purpose needs under {field} (or close the request_schema "
            "with additionalProperties: false)",
        )
    return context.finding(
        "minimisation",
        "pass",
        "every read has a response field allow-list and every write a request allow-list "
        "or a closed schema",
        evidence,
        context.at("routes"),
    )


def _input_validation(context: _Context) -> Finding:
    flow = context.flow
    if not flow.routes:
        return _no_routes(context, "input_validation", "how messages or files are validated")
    evidence, missing = [], []
    for index, route in context.routes():
        typed = len(route.params) + len(route.query)
        if route.method in BODY_METHODS:
            kinds = {media_kind(t) for t in route.accepted_types}
            if "other" in kinds:
                missing.append(
                    (index, route, f"accepts unparsed {', '.join(route.accepted_types)}")
                )
                continue
            if route.request_schema is None and route.xml is None and route.csv is None:
                missing.append((index, route, "no request_schema"))
                continue
            shape = (
                "request_schema"
                if route.request_schema is not None
                else ("xml policy" if route.xml is not None else "csv policy")
            )
            evidence.append(
                f"{route.label}: {shape}, max_body {route.max_body} B, {typed} typed params"
            )
        else:
            evidence.append(
                f"{route.label}: {typed} typed params (others: default pattern or refused)"
            )
    if missing:
        index, _, _ = missing[0]
        return context.finding(
            "input_validation",
            "fail",
            "request bodies reach the upstream unchecked: "
            + ", ".join(f"{r.label} ({why})" for _, r, why in missing),
            evidence,
            context.at("routes", index),
            "add a request_schema (JSON Schema 2020-12), or an xml/csv policy, to each "
            "route that takes a body",
        )
    return context.finding(
        "input_validation",
        "pass",
        "every body is parsed with size and depth limits and checked against a schema or "
        "policy; path and query parameters are typed, undeclared query parameters refused",
        evidence,
        context.at("routes"),
    )


def _rate_limiting(context: _Context) -> Finding:
    flow = context.flow
    if not flow.routes:
        return _no_routes(context, "rate_limiting", "throttling at the broker, share or database")
    evidence, missing = [], []
    for index, route in context.routes():
        limits = route.rate_limit
        dims = [] if limits is None else [f"{k} {v}" for k, v in limits.model_dump().items() if v]
        if dims:
            evidence.append(f"{route.label}: {', '.join(dims)}")
        else:
            missing.append((index, route))
    if missing:
        index = missing[0][0]
        return context.finding(
            "rate_limiting",
            "fail",
            f"no rate limit on {', '.join(r.label for _, r in missing)}",
            evidence,
            context.at("routes", index),
            "add rate_limit: {per_client: N/min} (and per_ip, per_route or per_integration)",
        )
    return context.finding(
        "rate_limiting", "pass", "every route has a rate limit", evidence, context.at("routes")
    )


def _sanitised_errors(context: _Context) -> Finding:
    if not context.flow.routes:
        return _no_routes(context, "sanitised_errors", "what the transport reports on failure")
    return context.finding(
        "sanitised_errors",
        "pass",
        "by construction: the gateway answers every refusal and every upstream 5xx with an "
        "RFC 9457 problem document carrying a correlation id and no internal detail; "
        "--live sends a malformed request to confirm",
        (f"{len(context.flow.routes)} route(s) served by the gateway's pipeline",),
        context.at("routes"),
    )


# -- GDPR register, audit trail, retention ------------------------------------------------


def _flows_documented(context: _Context) -> Finding:
    manifest, flow = context.manifest, context.flow
    register = build_register(
        manifest, source="", kek_backend="(not read in configuration mode)", now=datetime.now(UTC)
    )
    record = next(r for r in register.records if r.integration == context.name)
    evidence = [
        f"purpose: {flow.purpose[:80]}",
        f"legal basis: {record.legal_basis} ({record.legal_basis_article})",
        f"categories: {', '.join(c.key for c in record.data_categories) or 'none'}",
        f"subjects: {', '.join(s.key for s in record.data_subjects) or 'none'}",
        f"retention: {record.retention}",
        f"transfers: {record.transfer_statement}",
    ]
    gaps: list[tuple[str, DocPath]] = []
    if not flow.data_categories:
        gaps.append(("no data_categories declared", ("integrations", context.name)))
    if personal(flow):
        if manifest.organisation is None:
            gaps.append(("no organisation (controller) declared, Art. 30(1)(a)", ()))
        if not flow.data_subjects:
            gaps.append(
                (
                    "no data_subjects declared, Art. 30(1)(c)",
                    ("integrations", context.name, "data_categories"),
                )
            )
    if gaps:
        return context.finding(
            "flows_documented",
            "fail",
            "the Art. 30 record is incomplete: " + "; ".join(g for g, _ in gaps),
            evidence,
            context.locate(gaps[0][1]),
            "declare the missing facts (interlock privacy ropa shows the record)",
        )
    return context.finding(
        "flows_documented",
        "pass",
        "the integration makes a complete Art. 30 record: controller, purpose, legal basis, "
        "categories, subjects, recipients, retention and transfers with their safeguard",
        evidence,
        context.at("purpose"),
    )


def _audit_trail(context: _Context) -> Finding:
    flow = context.flow
    mode = "required" if flow.audit_required else "best_effort"
    declared = f"audit: {flow.audit}" if flow.audit else f"audit: default ({mode})"
    evidence = (declared, f"personal data: {'yes' if personal(flow) else 'no'}")
    if not flow.routes:
        return _no_routes(context, "audit_trail", "its transfers to record them")
    if personal(flow) and not flow.audit_required:
        return context.finding(
            "audit_trail",
            "fail",
            "the flow carries personal data but its audit entries are best effort: a request "
            "can release data without a durable record",
            evidence,
            context.at("audit"),
            "remove audit: best_effort (personal data defaults to required)",
        )
    return context.finding(
        "audit_trail",
        "pass",
        f"every request is recorded on the tamper-evident audit log ({mode}); --live checks "
        "that the log verifies and has a recent signed checkpoint",
        evidence,
        context.at("audit") if flow.audit else context.at(),
    )


def _retention(context: _Context) -> Finding:
    flow = context.flow
    idempotent = sum(1 for route in flow.routes if route.idempotency is not None)
    evidence = [f"retention: {flow.retention.days} days"]
    if idempotent:
        evidence.append(f"{idempotent} route(s) keep idempotency records, bounded by the retention")
    return context.finding(
        "retention",
        "pass",
        "the integration declares its retention; idempotency records and lineage entries "
        "expire within it",
        evidence,
        context.at("retention"),
    )


# -- shared ---------------------------------------------------------------------------------


def _no_routes(context: _Context, item: str, what: str) -> Finding:
    return context.finding(
        item,
        "needs_evidence",
        f"the integration has no routes through the gateway, so Interlock cannot see {what}",
        ("routes: none",),
        context.at(),
        "declare its type: and follow the manual steps for that type, or add its routes",
    )


def _validate_warnings(manifest: Manifest) -> list[tuple[DocPath, str]]:
    """``interlock validate``'s warnings on a valid manifest, with their document paths."""
    entities = Entities(
        systems=dict(manifest.systems),
        roles=dict(manifest.roles),
        clients=dict(manifest.clients),
        integrations=dict(manifest.integrations),
        trusted_issuers=dict(manifest.trusted_issuers),
        rules=dict(manifest.rules),
        routes={name: list(enumerate(flow.routes)) for name, flow in manifest.integrations.items()},
        refs={
            name: {"source": flow.source, "target": flow.target, "client": flow.client}
            for name, flow in manifest.integrations.items()
        },
        declared={
            "systems": set(manifest.systems),
            "roles": set(manifest.roles),
            "clients": set(manifest.clients),
            "integrations": set(manifest.integrations),
            "trusted_issuers": set(manifest.trusted_issuers),
            "rules": set(manifest.rules),
        },
        mentioned_scopes={r.scope for f in manifest.integrations.values() for r in f.routes},
        shared_scopes=frozenset(manifest.shared_scopes),
        organisation=manifest.organisation,
        organisation_declared=manifest.organisation is not None,
        privacy={
            name: PrivacyFacts(
                flow.data_categories,
                flow.special_category_condition is not None,
                flow.criminal_data_basis is not None,
            )
            for name, flow in manifest.integrations.items()
        },
    )
    return [(f.path, f.message) for f in cross_check(entities) if f.severity == "warning"]


_CHECKS: Final[dict[str, Callable[[_Context], Finding]]] = {
    "authentication": _authentication,
    "least_privilege": _least_privilege,
    "secrets_manager": _secrets_manager,
    "tls_required": _tls_required,
    "certificates_validated": _certificates_validated,
    "encryption_at_rest": _encryption_at_rest,
    "minimisation": _minimisation,
    "input_validation": _input_validation,
    "rate_limiting": _rate_limiting,
    "sanitised_errors": _sanitised_errors,
    "flows_documented": _flows_documented,
    "audit_trail": _audit_trail,
    "retention": _retention,
}
