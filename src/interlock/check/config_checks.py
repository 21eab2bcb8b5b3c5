"""The checklist from configuration alone: one finding per integration and item.

Each check reads the validated manifest (never the raw YAML) and says what it
read (``evidence``), where to fix it (the manifest line, from the YAML source
map when there is one) and how. Where the manifest's own validation already
refuses the dangerous form (``http://`` upstreams, ``ca: none``, secrets
written inline, TLS below 1.2), the item passes *by construction* and the
reason says so; what configuration cannot show (the KEK backend, the answers
of a running gateway) is ``needs_evidence`` until ``--live`` supplies it.
An integration without routes (another integration type) is never a silent
pass: its route-level items are ``needs_evidence`` or ``not_applicable``,
unless its type has an Interlock adapter that answers them from its own
section (messaging: :mod:`interlock.check.config_messaging`; event streaming:
:mod:`interlock.check.config_events`).

Decisions recorded here (docs/check.md repeats them):

* authentication: every route authenticates by construction; a route that
  carries special-category data (GDPR Art. 9/10) and that any client able to
  call it (the integration's client or one of its callers) reaches with API
  keys alone (bearer secrets without proof of possession) fails: use oauth2
  and/or mtls.
* minimisation: reads (GET) of personal-data integrations need
  ``response_fields``; routes that take a body (POST/PUT/PATCH, or one that
  declares a body: ``Route.takes_body``) need ``request_fields`` or a
  closed ``request_schema`` (``additionalProperties: false``).
* least_privilege reuses ``interlock validate``'s findings
  (:func:`interlock.config.checks.cross_check`) for the roles the
  integration's clients hold.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

from interlock.check import config_privacy, config_routes
from interlock.check.config_context import Context, no_routes
from interlock.check.config_databases import DATABASE_CHECKS, database_type_findings
from interlock.check.config_events import EVENTS_CHECKS, events_type_findings
from interlock.check.config_files import FILES_CHECKS, files_type_findings
from interlock.check.config_messaging import MESSAGING_CHECKS, messaging_type_findings
from interlock.check.items import ITEMS
from interlock.check.results import Finding
from interlock.clock import Clock, utc_now
from interlock.config.checks import Entities, PrivacyFacts, cross_check
from interlock.config.loader import format_path
from interlock.config.manifest import Manifest, Route
from interlock.config.yaml_source import DocPath, YamlDocument
from interlock.gdpr.taxonomy import special_kind

__all__ = ["check_configuration"]


def check_configuration(
    manifest: Manifest,
    source_map: YamlDocument | None,
    manifest_path: Path | str,
    *,
    now: Clock = utc_now,
) -> list[Finding]:
    """Every integration of ``manifest`` against every item of :data:`ITEMS`, in order.

    ``source_map`` locates findings on manifest lines (None: line 1 of the file);
    ``now`` is read once, and decides what has expired.
    """
    at = now()
    file = str(manifest_path)
    warnings = _validate_warnings(manifest)
    findings: list[Finding] = []
    for name in manifest.integrations:
        context = Context(manifest, name, source_map, file, warnings, now=at)
        if context.flow.messaging is not None:
            checks = {**_CHECKS, **MESSAGING_CHECKS}
            findings.extend(checks[entry.id](context) for entry in ITEMS)
            findings.extend(messaging_type_findings(context))
            continue
        if context.flow.files is not None:
            checks = {**_CHECKS, **FILES_CHECKS}
            findings.extend(checks[entry.id](context) for entry in ITEMS)
            findings.extend(files_type_findings(context))
            continue
        if context.flow.database is not None:
            checks = {**_CHECKS, **DATABASE_CHECKS}
            findings.extend(checks[entry.id](context) for entry in ITEMS)
            findings.extend(database_type_findings(context))
            continue
        if context.flow.events is not None:
            checks = {**_CHECKS, **EVENTS_CHECKS}
            findings.extend(checks[entry.id](context) for entry in ITEMS)
            findings.extend(events_type_findings(context))
            continue
        findings.extend(_CHECKS[entry.id](context) for entry in ITEMS)
    return findings


# -- authentication, least privilege, secrets, TLS, certificates --------------------------


def _route_methods(context: Context, route: Route) -> dict[str, tuple[str, ...]]:
    """Each client that can call ``route`` and the credentials it may use there.

    As the gateway decides (stages/authorise.py): every client among the
    integration's callers, with its own methods, narrowed to the route's
    ``auth`` when the route has one; a client left with none cannot call it.
    """
    clients = context.manifest.clients
    reach: dict[str, tuple[str, ...]] = {}
    for name in sorted(context.flow.all_callers, key=lambda c: (c != context.flow.client, c)):
        client = clients.get(name)
        own = client.auth if client is not None else ()
        methods = tuple(m for m in own if m in route.auth) if route.auth else own
        if methods:
            reach[name] = methods
    return reach


def _route_evidence(context: Context, route: Route) -> str:
    reach = _route_methods(context, route)
    if set(reach) <= {context.flow.client}:  # the integration's own client alone
        return f"{route.label}: {', '.join(reach.get(context.flow.client, ()))}"
    callers = "; ".join(f"{name} ({', '.join(methods)})" for name, methods in reach.items())
    return f"{route.label}: {callers}"


def _key_only(context: Context, route: Route) -> list[str]:
    """The clients that reach ``route`` with API keys alone."""
    return [
        c for c, methods in _route_methods(context, route).items() if set(methods) == {"api_key"}
    ]


def _authentication(context: Context) -> Finding:
    flow = context.flow
    if not flow.routes:
        return no_routes(context, "authentication", "how each side authenticates the other")
    evidence = [_route_evidence(context, r) for r in flow.routes]
    special = [c for c in flow.data_categories if special_kind(c) is not None]
    weak = [(i, r, _key_only(context, r)) for i, r in context.routes() if _key_only(context, r)]
    if special and weak:
        index, route, _ = weak[0]
        clients = sorted({c for _, _, names in weak for c in names})
        return context.finding(
            "authentication",
            "fail",
            f"{', '.join(r.label for _, r, _ in weak)} carry special-category data "
            f"({', '.join(special)}) but client(s) {', '.join(clients)} reach them with API "
            "keys alone, bearer secrets without proof of possession",
            evidence,
            context.at("routes", index, "auth")
            if route.auth
            else context.at("client" if flow.client in clients else "callers"),
            f"let {', '.join(repr(c) for c in clients)} use oauth2 and/or mtls (auth: "
            "[oauth2, mtls]), or require them on these routes (auth: [oauth2, mtls])",
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


def _least_privilege(context: Context) -> Finding:
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
        return no_routes(
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


def _systems(context: Context) -> list[str]:
    flow = context.flow
    names = [flow.source, flow.target, *(r.upstream for r in flow.routes)]
    return [n for n in dict.fromkeys(names) if n in context.manifest.systems]


def _secrets_manager(context: Context) -> Finding:
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


def _tls_required(context: Context) -> Finding:
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


def _certificates_validated(context: Context) -> Finding:
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


def _encryption_at_rest(context: Context) -> Finding:
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


_CHECKS: Final[dict[str, Callable[[Context], Finding]]] = {
    "authentication": _authentication,
    "least_privilege": _least_privilege,
    "secrets_manager": _secrets_manager,
    "tls_required": _tls_required,
    "certificates_validated": _certificates_validated,
    "encryption_at_rest": _encryption_at_rest,
    "minimisation": config_routes.minimisation,
    "input_validation": config_routes.input_validation,
    "rate_limiting": config_routes.rate_limiting,
    "sanitised_errors": config_routes.sanitised_errors,
    "flows_documented": config_privacy.flows_documented,
    "audit_trail": config_privacy.audit_trail,
    "retention": config_privacy.retention,
}
