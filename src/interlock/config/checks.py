"""Rules that relate manifest entities to each other.

Checks run on the entities that parsed, so one mistake is reported once rather
than cascading: a reference to a system that is *declared* but failed its own
validation is not also reported as unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Literal

from interlock.config.databases import DatabaseSystem
from interlock.config.databases_checks import database_findings, generated_name_findings
from interlock.config.events_checks import event_scopes, events_findings, mode_conflicts
from interlock.config.field_categories import route_field_findings
from interlock.config.files import Partner
from interlock.config.manifest import (
    GATEWAY_SCOPES,
    OPERATOR_SCOPES,
    RULES_ENTRY_POINTS,
    Client,
    Integration,
    OperatorAccount,
    Organisation,
    Role,
    Route,
    SqlRule,
    System,
    TrustedIssuer,
    template_shape,
)
from interlock.config.messaging import Broker
from interlock.config.messaging_checks import messaging_findings
from interlock.config.subject_checks import subject_findings
from interlock.config.yaml_source import DocPath, one_line
from interlock.errors import did_you_mean
from interlock.gdpr.adequacy import EEA
from interlock.gdpr.taxonomy import special_kind

__all__ = ["Entities", "Finding", "PrivacyFacts", "cross_check", "known_hint"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """A problem at ``path``; ``at_key`` locates it on the key rather than the value.

    ``position`` overrides the location when the path alone is ambiguous (a
    duplicate key shares its path with the first occurrence).
    """

    path: DocPath
    message: str
    severity: Severity = "error"
    at_key: bool = False
    position: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        # One line whatever the values it names hold (a manifest author's line breaks).
        object.__setattr__(self, "message", one_line(self.message))


@dataclass(frozen=True)
class PrivacyFacts:
    """What an integration says about special categories (GDPR Art. 9, 10)."""

    categories: tuple[str, ...]
    condition: bool
    criminal_basis: bool


@dataclass
class Entities:
    """What parsed, and every name that was declared (parsed or not)."""

    systems: dict[str, System] = field(default_factory=dict)
    roles: dict[str, Role] = field(default_factory=dict)
    clients: dict[str, Client] = field(default_factory=dict)
    integrations: dict[str, Integration] = field(default_factory=dict)
    trusted_issuers: dict[str, TrustedIssuer] = field(default_factory=dict)
    rules: dict[str, SqlRule] = field(default_factory=dict)
    brokers: dict[str, Broker] = field(default_factory=dict)
    operators: dict[str, OperatorAccount] = field(default_factory=dict)
    partners: dict[str, Partner] = field(default_factory=dict)
    databases: dict[str, DatabaseSystem] = field(default_factory=dict)
    routes: dict[str, list[tuple[int, Route]]] = field(default_factory=dict)
    # source/target/client of every integration, even one that failed to parse,
    # so that its references are still checked.
    refs: dict[str, dict[str, str]] = field(default_factory=dict)
    declared: dict[str, set[str]] = field(default_factory=dict)
    # Sections that are not a mapping: their names are unknown, so references
    # into them are not checked (the section's own error says enough).
    broken: set[str] = field(default_factory=set)
    complete: bool = True  # False when any role failed to parse
    # Scopes named by any route, parsed or not; None when some route could not
    # even be read, so "no route uses this scope" cannot be known.
    mentioned_scopes: set[str] | None = field(default_factory=set)
    # Names of the installed Python business rules (entry points), once looked up.
    python_rules: frozenset[str] | None = None
    # Scopes declared as held by clients of several integrations (shared_scopes).
    shared_scopes: frozenset[str] = frozenset()
    # The controller, representative and DPO (GDPR Art. 30(1)(a)); declared even when
    # it failed to parse, so that its absence is not reported on top.
    organisation: Organisation | None = None
    organisation_declared: bool = False
    # Each integration's declared categories and its Art. 9(2) / Art. 10 answers, read
    # even when the integration failed to parse, so special categories are reported
    # alongside its other errors.
    privacy: dict[str, PrivacyFacts] = field(default_factory=dict)

    def undeclared(self, section: str, name: str) -> bool:
        """True when ``name`` is certainly not declared in ``section``."""
        return section not in self.broken and name not in self.declared.get(section, set())


def cross_check(entities: Entities) -> Iterator[Finding]:
    """References, duplicates, purpose limitation, transfers and least privilege."""
    yield from _client_roles(entities)
    yield from _issuer_clients(entities)
    granted = {scope for role in entities.roles.values() for scope in role.scopes}
    used: set[str] = set()
    seen_routes: dict[tuple[str, str], tuple[str, int]] = {}
    for name, refs in entities.refs.items():
        yield from _integration_refs(entities, name, refs)
        if name in entities.integrations:
            yield from _transfer(entities, name, entities.integrations[name])
        yield from _special_categories(name, entities.privacy.get(name))
        for index, route in entities.routes.get(name, []):
            used.add(route.scope)
            yield from _route(
                entities, name=name, refs=refs, index=index, route=route, granted=granted
            )
            yield from _field_categories(entities, name, index, route)
            key = (route.method, template_shape(route.path))
            if key in seen_routes:
                first, first_index = seen_routes[key]
                yield Finding(
                    ("integrations", name, "routes", index, "path"),
                    f"duplicate route {route.method} {route.path}: already defined at "
                    f"integrations.{first}.routes[{first_index}]",
                )
            else:
                seen_routes[key] = (name, index)
        yield from _subjects(entities, name)
        yield from _messaging(entities, name)
        yield from _events(entities, name)
        yield from _located(
            database_findings(
                name,
                entities.integrations.get(name),
                has_routes=bool(entities.routes.get(name)),
                undeclared=entities.undeclared,
                known=lambda section, name: _known(entities, section, name),
            )
        )
        yield from _files(entities, name)
        if name in entities.integrations:
            used |= event_scopes(entities.integrations[name])
    yield from _located(mode_conflicts(entities.integrations))
    if entities.complete and entities.mentioned_scopes is not None:
        # The gateway's own scopes are used by its own endpoints (the vault API).
        yield from _unused_scopes(
            entities, used | entities.mentioned_scopes | set(GATEWAY_SCOPES) | set(OPERATOR_SCOPES)
        )
    if entities.complete and "integrations" not in entities.broken:
        yield from _scopes_across_integrations(entities)
    yield from _located(generated_name_findings(entities.integrations))
    yield from _organisation(entities)


def _client_roles(entities: Entities) -> Iterator[Finding]:
    holders = [("clients", n, c.roles) for n, c in entities.clients.items()]
    holders += [("operators", n, o.roles) for n, o in entities.operators.items()]
    for section, name, roles in holders:
        for index, role in enumerate(roles):
            if entities.undeclared("roles", role):
                yield Finding(
                    (section, name, "roles", index),
                    f"unknown role {role!r}{_known(entities, 'roles', role)}",
                )


def _issuer_clients(entities: Entities) -> Iterator[Finding]:
    for name, trusted in entities.trusted_issuers.items():
        for external, client in trusted.clients.items():
            path = ("trusted_issuers", name, "clients", external)
            if entities.undeclared("clients", client):
                yield Finding(
                    path, f"unknown client {client!r}{_known(entities, 'clients', client)}"
                )
            elif client in entities.clients and "oauth2" not in entities.clients[client].auth:
                yield Finding(path, f"client {client!r} does not list oauth2 in its auth methods")


def _scopes_across_integrations(entities: Entities) -> Iterator[Finding]:
    """A scope held by clients of several integrations, some refused by another's routes.

    A route belongs to its integration: the gateway refuses any client that is not
    the integration's client or one of its ``callers``, whatever scopes it holds.
    A scope that clients of several integrations hold, where some of them are not
    callers of every integration whose routes require it, is broader than its use
    (least privilege) unless the manifest declares it in ``shared_scopes``. One
    finding per scope, at the first role that grants it.
    """
    flows = entities.integrations
    requiring: dict[str, list[str]] = {}  # scope -> integrations whose routes require it
    for name, routes in entities.routes.items():
        for _, route in routes:
            if name in flows and name not in requiring.setdefault(route.scope, []):
                requiring[route.scope].append(name)
    in_some = {c for flow in flows.values() for c in flow.all_callers}
    for scope, needing in requiring.items():
        if scope in entities.shared_scopes:
            continue
        holders = sorted(
            name
            for name, client in entities.clients.items()
            if name in in_some
            and any(scope in getattr(entities.roles.get(r), "scopes", ()) for r in client.roles)
        )
        refused = [
            f"{flow}'s routes refuse {', '.join(outsiders)}"
            for flow in needing
            if (outsiders := [c for c in holders if c not in flows[flow].all_callers])
        ]
        if not refused:
            continue
        yield Finding(
            _first_grant(entities, scope),
            f"scope {scope!r} is held by clients of several integrations "
            f"({', '.join(holders)}), but {'; '.join(refused)} (a route belongs to its "
            "integration): give each integration its own scope, name the clients under the "
            "integration's callers, or declare the scope under shared_scopes",
        )


def _first_grant(entities: Entities, scope: str) -> DocPath:
    for name, role in entities.roles.items():
        if scope in role.scopes:
            return ("roles", name, "scopes", role.scopes.index(scope))
    return ("roles",)


def _integration_refs(entities: Entities, name: str, refs: dict[str, str]) -> Iterator[Finding]:
    for field_name, section in (
        ("source", "systems"),
        ("target", "systems"),
        ("client", "clients"),
    ):
        value = refs.get(field_name)
        if value is not None and entities.undeclared(section, value):
            yield Finding(
                ("integrations", name, field_name),
                f"unknown {section[:-1]} {value!r}{_known(entities, section, value)}",
            )
    flow = entities.integrations.get(name)
    for index, caller in enumerate(flow.callers if flow is not None else ()):
        if entities.undeclared("clients", caller):
            yield Finding(
                ("integrations", name, "callers", index),
                f"unknown client {caller!r}{_known(entities, 'clients', caller)}",
            )


def _organisation(entities: Entities) -> Iterator[Finding]:
    """The register names the controller (Art. 30(1)(a)) and, outside the EEA, its representative.

    Missing ``organisation`` is a warning, not an error: the gateway enforces the
    flows without it, but the Art. 30 record cannot be made.
    """
    organisation = entities.organisation
    if organisation is None:
        personal = any(flow.personal for flow in entities.integrations.values())
        if personal and not entities.organisation_declared:
            yield Finding(
                (),
                "integrations carry personal data (user.*) but no organisation is declared: "
                "the Art. 30 record needs organisation: {controller: {name, contact}} "
                "(GDPR Art. 30(1)(a))",
                severity="warning",
            )
        return
    country = organisation.controller.country
    if country is not None and country not in EEA and organisation.representative is None:
        yield Finding(
            ("organisation", "controller", "country"),
            f"the controller is established in {country}, outside the EEA: name its "
            "representative in the Union under organisation.representative (GDPR Art. 27)",
        )


def _special_categories(name: str, facts: PrivacyFacts | None) -> Iterator[Finding]:
    """Art. 9 data needs an Art. 9(2) condition; Art. 10 data its own basis in law."""
    if facts is None:
        return
    at: DocPath = ("integrations", name, "data_categories")
    for index, category in enumerate(facts.categories):
        kind = special_kind(category)
        if kind == "art9" and not facts.condition:
            yield Finding(
                (*at, index),
                f"{category} is special-category data (GDPR Art. 9(1)): processing it is "
                "prohibited unless a condition of Art. 9(2) applies; declare "
                "special_category_condition (explicit_consent, employment_social_security, "
                "... archiving_research_statistics: Art. 9(2)(a)-(j))",
            )
        elif kind == "art10" and not facts.criminal_basis:
            yield Finding(
                (*at, index),
                f"{category} is data on criminal convictions and offences (GDPR Art. 10): "
                "declare criminal_data_basis, the official authority or the Union or "
                "Member State law that authorises the processing",
            )


def _transfer(entities: Entities, name: str, flow: Integration) -> Iterator[Finding]:
    target = entities.systems.get(flow.target)
    personal = flow.personal
    if target is not None and personal and target.location not in EEA:
        if flow.transfer is None:
            yield Finding(
                ("integrations", name, "target"),
                f"personal data goes to {flow.target} in {target.location}, outside the "
                "EEA, but no transfer is declared; add transfer: {destination, safeguard} "
                "(GDPR Art. 44-49)",
            )
        elif flow.transfer.destination != target.location:
            yield Finding(
                ("integrations", name, "transfer", "destination"),
                f"transfer destination {flow.transfer.destination} differs from the target "
                f"system's location {target.location}",
            )
    if not personal:
        return
    declared = flow.transfer.destination if flow.transfer is not None else None
    for path, holder, location in _other_recipients(entities, name, flow):
        if location not in EEA and declared != location:
            yield Finding(
                path,
                f"personal data {holder} in {location}, outside the EEA, but no transfer to "
                f"{location} is declared; add transfer: {{destination, safeguard}} "
                "(GDPR Art. 44-49)",
            )


def _other_recipients(
    entities: Entities, name: str, flow: Integration
) -> Iterator[tuple[DocPath, str, str]]:
    """Where else than the target the flow's data goes: ``(path, who, location)``.

    A route's upstream receives its request, and its caller, the integration's
    other system (:meth:`Integration.caller_of`), its response: the two
    receivers of the lineage. Each system once, at its first route. Messages
    and events rest on their broker; outbound files go to the partner (files a
    partner sends us are not a transfer by this deployment).
    """
    seen = {flow.target}  # the target's own rule covers it
    for index, route in entities.routes.get(name, []):
        at: DocPath = ("integrations", name, "routes", index)
        caller = flow.caller_of(route.upstream)
        for system, located, holder in (
            (route.upstream, (*at, "upstream"), f"goes to {route.upstream}"),
            (caller, at, f"in the responses of routes[{index}] goes to the caller {caller}"),
        ):
            where = entities.systems.get(system)
            if where is not None and system not in seen:
                seen.add(system)
                yield located, holder, where.location
    section = flow.messaging or flow.events
    broker = entities.brokers.get(section.broker) if section is not None else None
    if section is not None and broker is not None:
        kind = "messaging" if flow.messaging is not None else "events"
        path: DocPath = ("integrations", name, kind, "broker")
        yield path, f"rests on broker {section.broker}", broker.location
    files = flow.files
    partner = entities.partners.get(files.partner) if files is not None else None
    if files is not None and partner is not None and files.direction == "outbound":
        path = ("integrations", name, "files", "partner")
        yield path, f"goes to partner {files.partner}", partner.location


def _route(
    entities: Entities,
    *,
    name: str,
    refs: dict[str, str],
    index: int,
    route: Route,
    granted: set[str],
) -> Iterator[Finding]:
    at: DocPath = ("integrations", name, "routes", index)
    source, target = refs.get("source"), refs.get("target")
    if entities.undeclared("systems", route.upstream):
        yield Finding(
            (*at, "upstream"),
            f"unknown system {route.upstream!r}{_known(entities, 'systems', route.upstream)}",
        )
    elif source is not None and target is not None and route.upstream not in {source, target}:
        yield Finding(
            (*at, "upstream"),
            f"upstream {route.upstream!r} is neither this integration's source "
            f"({source}) nor its target ({target}): an integration may only "
            "reach the systems it declares (purpose limitation)",
        )
    if entities.complete and route.scope not in granted:
        yield Finding(
            (*at, "scope"),
            f"unknown scope {route.scope!r}: no role grants it{did_you_mean(route.scope, granted)}",
        )
        return
    client = entities.clients.get(refs.get("client", ""))
    if client is not None and route.auth is not None:
        unusable = [method for method in route.auth if method not in client.auth]
        if unusable:
            yield Finding(
                (*at, "auth"),
                f"client {refs.get('client')!r} may not use {', '.join(unusable)} (its auth is "
                f"{', '.join(client.auth)}), so this route could not be called that way",
            )
    yield from _route_rules(entities, at, route)
    if client is not None and entities.complete:
        client_scopes = {
            scope
            for role in client.roles
            for scope in getattr(entities.roles.get(role), "scopes", ())
        }
        if route.scope not in client_scopes:
            yield Finding(
                (*at, "scope"),
                f"client {refs.get('client')!r} has no role granting {route.scope!r}, so this "
                "route could never be called by its integration's client",
            )


def _field_categories(entities: Entities, name: str, index: int, route: Route) -> Iterator[Finding]:
    """Fields tagged (or named) as personal data of a category the integration does not declare."""
    facts = entities.privacy.get(name)
    declared = facts.categories if facts is not None else ()
    at: DocPath = ("integrations", name, "routes", index)
    yield from _located(route_field_findings(at, route, name, declared))


def _subjects(entities: Entities, name: str) -> Iterator[Finding]:
    """Subject locators that could never match, or trace people by an undeclared category."""
    facts = entities.privacy.get(name)
    flow = entities.integrations.get(name)
    found = subject_findings(
        name,
        flow.subjects if flow is not None else (),
        entities.routes.get(name, []),
        facts.categories if facts is not None else (),
    )
    yield from _located(found)


def _files(entities: Entities, name: str) -> Iterator[Finding]:
    """A file integration's partner exists and offers the integration's transport."""
    flow = entities.integrations.get(name)
    spec = flow.files if flow is not None else None
    if spec is None:
        return
    at: DocPath = ("integrations", name, "files")
    if entities.routes.get(name):
        yield Finding(("integrations", name, "routes"), "a file integration has no HTTP routes")
    if entities.undeclared("partners", spec.partner):
        yield Finding((*at, "partner"), f"unknown partner {spec.partner!r}"
                      f"{_known(entities, 'partners', spec.partner)}")  # fmt: skip
        return
    partner = entities.partners.get(spec.partner)
    offered = getattr(partner, spec.transport, None) if partner is not None else True
    if offered is None:
        yield Finding(
            (*at, "transport"),
            f"partner {spec.partner!r} has no {spec.transport}: section (declare its "
            f"{spec.transport} profile under partners.{spec.partner})",
        )


def _events(entities: Entities, name: str) -> Iterator[Finding]:
    """An event-streaming integration's broker, consumers, grants and their roles."""
    flow = entities.integrations.get(name)
    if flow is None:
        return

    def scopes_of(client: str) -> frozenset[str] | None:
        spec = entities.clients.get(client)
        if spec is None or not entities.complete:
            return None
        roles = [entities.roles.get(role) for role in spec.roles]
        return frozenset(s for role in roles if role is not None for s in role.scopes)

    found = events_findings(
        name,
        flow,
        has_routes=bool(entities.routes.get(name)),
        undeclared=entities.undeclared,
        known=lambda section, name: _known(entities, section, name),
        scopes_of=scopes_of,
    )
    yield from _located(found)


def _messaging(entities: Entities, name: str) -> Iterator[Finding]:
    """A messaging integration's broker, consumers and dead-letter role exist."""
    flow = entities.integrations.get(name)
    if flow is None:
        return
    found = messaging_findings(
        name,
        flow,
        has_routes=bool(entities.routes.get(name)),
        undeclared=entities.undeclared,
        known=lambda section, name: _known(entities, section, name),
    )
    yield from _located(found)


def _located(found: Iterable[tuple[DocPath, str, bool]]) -> Iterator[Finding]:
    """Findings from the ``(path, message, is_error)`` of the per-section check modules."""
    for path, message, error in found:
        yield Finding(path, message, "error" if error else "warning")


def _route_rules(entities: Entities, at: DocPath, route: Route) -> Iterator[Finding]:
    """Each rule a route names is a SQL rule of the manifest or an installed entry point."""
    if not route.rules or "rules" in entities.broken:
        return
    if entities.python_rules is None:  # scanned once per check, and only when a route needs it
        entities.python_rules = frozenset(p.name for p in entry_points(group=RULES_ENTRY_POINTS))
    for index, rule in enumerate(route.rules):
        if rule not in entities.declared.get("rules", set()) and rule not in entities.python_rules:
            hint = did_you_mean(
                rule, {*entities.declared.get("rules", set()), *entities.python_rules}
            )
            yield Finding(
                (*at, "rules", index),
                f"unknown rule {rule!r}{hint}"
                if hint
                else f"unknown rule {rule!r}: declare it under rules: (a SQL lookup) or install "
                f"a package with an '{RULES_ENTRY_POINTS}' entry point of that name",
            )


def _unused_scopes(entities: Entities, used: set[str]) -> Iterator[Finding]:
    for name, role in entities.roles.items():
        for index, scope in enumerate(role.scopes):
            if scope not in used:
                yield Finding(
                    ("roles", name, "scopes", index),
                    f"scope {scope!r} is granted but no route requires it; remove it "
                    "(least privilege: grants should not be broader than any use)",
                    severity="warning",
                )


def _known(entities: Entities, section: str, name: str) -> str:
    """``; did you mean 'x'?`` for a close match, else ``(known: a, b)`` or that none are."""
    return known_hint(name, entities.declared.get(section, set()), section)


def known_hint(name: str, names: Iterable[str], section: str) -> str:
    """The close matches to ``name`` among ``names``; the whole list only when none is close."""
    names = sorted(names)
    if hint := did_you_mean(name, names):
        return hint
    return f" (known: {', '.join(names)})" if names else f" (no {section} are declared)"
