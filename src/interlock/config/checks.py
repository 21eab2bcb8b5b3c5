"""Rules that relate manifest entities to each other, and insecure switches.

Checks run on the entities that parsed, so one mistake is reported once rather
than cascading: a reference to a system that is *declared* but failed its own
validation is not also reported as unknown.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from interlock.config.manifest import Client, Integration, Role, Route, System, template_shape
from interlock.config.yaml_source import DocPath

__all__ = ["Entities", "Finding", "cross_check", "find_insecure_switches"]

Severity = Literal["error", "warning"]

# Keys that, set to a false value, turn certificate or host-name checking off.
_VERIFY_KEYS: Final = frozenset(
    {
        "verify",
        "tls_verify",
        "ssl_verify",
        "verify_ssl",
        "verify_tls",
        "verify_certs",
        "verify_certificate",
        "verify_peer",
        "verify_hostname",
        "check_hostname",
        "ssl_check_hostname",
        "tls_verify_peer",
        "cert_reqs",
        "ssl_cert_reqs",
    }
)
# Keys that, set to a true value, do the same.
_INSECURE_KEYS: Final = frozenset(
    {
        "insecure",
        "insecure_skip_verify",
        "insecure_skip_tls_verify",
        "skip_verify",
        "skip_tls_verify",
        "tls_skip_verify",
        "tls_insecure",
        "ssl_insecure",
        "disable_ssl",
        "disable_tls",
        "ssl_disable",
        "allow_insecure",
        "trust_all",
        "trust_all_certs",
        "accept_invalid_certs",
        "danger_accept_invalid_certs",
        "no_verify",
    }
)
_FALSE_WORDS: Final = frozenset({"false", "no", "off", "0", "none", "cert_none", "disabled"})
_WHY: Final = (
    "certificate verification cannot be turned off: without it anyone on the network "
    "path can impersonate the other system and read or change the data (CWE-295); "
    "trust a private CA with `ca: pki:NAME` or `ca: file:PATH` instead"
)
_EEA: Final = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
        "IS",
        "LI",
        "NO",
    ]
)


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


@dataclass
class Entities:
    """What parsed, and every name that was declared (parsed or not)."""

    systems: dict[str, System] = field(default_factory=dict)
    roles: dict[str, Role] = field(default_factory=dict)
    clients: dict[str, Client] = field(default_factory=dict)
    integrations: dict[str, Integration] = field(default_factory=dict)
    routes: dict[str, list[tuple[int, Route]]] = field(default_factory=dict)
    # source/target/client of every integration, even one that failed to parse,
    # so that its references are still checked.
    refs: dict[str, dict[str, str]] = field(default_factory=dict)
    declared: dict[str, set[str]] = field(default_factory=dict)
    complete: bool = True  # False when any role failed to parse


def find_insecure_switches(data: object, path: DocPath = ()) -> Iterator[Finding]:
    """Every key, anywhere, that would disable certificate verification."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            child = (*path, key)
            normalised = str(key).lower().replace("-", "_")
            if normalised in _VERIFY_KEYS or normalised in _INSECURE_KEYS:
                disables = (normalised in _VERIFY_KEYS and _is_false(value)) or (
                    normalised in _INSECURE_KEYS and not _is_false(value)
                )
                message = (
                    f"{key!r} is refused: {_WHY}"
                    if disables
                    else f"unknown field {key!r}: certificate verification is always on "
                    "and cannot be configured"
                )
                yield Finding(child, message, at_key=True)
            else:
                yield from find_insecure_switches(value, child)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from find_insecure_switches(item, (*path, index))


def cross_check(entities: Entities) -> Iterator[Finding]:
    """References, duplicates, purpose limitation, transfers and least privilege."""
    yield from _client_roles(entities)
    granted = {scope for role in entities.roles.values() for scope in role.scopes}
    used: set[str] = set()
    seen_routes: dict[tuple[str, str], tuple[str, int]] = {}
    for name, refs in entities.refs.items():
        yield from _integration_refs(entities, name, refs)
        if name in entities.integrations:
            yield from _transfer(entities, name, entities.integrations[name])
        for index, route in entities.routes.get(name, []):
            used.add(route.scope)
            yield from _route(
                entities, name=name, refs=refs, index=index, route=route, granted=granted
            )
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
    if entities.complete:
        yield from _unused_scopes(entities, used)


def _client_roles(entities: Entities) -> Iterator[Finding]:
    for name, client in entities.clients.items():
        for index, role in enumerate(client.roles):
            if role not in entities.declared.get("roles", set()):
                yield Finding(
                    ("clients", name, "roles", index),
                    f"unknown role {role!r}{_known(entities, 'roles')}",
                )


def _integration_refs(entities: Entities, name: str, refs: dict[str, str]) -> Iterator[Finding]:
    for field_name, section in (
        ("source", "systems"),
        ("target", "systems"),
        ("client", "clients"),
    ):
        value = refs.get(field_name)
        if value is not None and value not in entities.declared.get(section, set()):
            yield Finding(
                ("integrations", name, field_name),
                f"unknown {section[:-1]} {value!r}{_known(entities, section)}",
            )


def _transfer(entities: Entities, name: str, flow: Integration) -> Iterator[Finding]:
    target = entities.systems.get(flow.target)
    personal = any(category.startswith("user") for category in flow.data_categories)
    if target is not None and personal and target.location not in _EEA:
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
    if route.upstream not in entities.declared.get("systems", set()):
        yield Finding((*at, "upstream"), f"unknown system {route.upstream!r}")
    elif source is not None and target is not None and route.upstream not in {source, target}:
        yield Finding(
            (*at, "upstream"),
            f"upstream {route.upstream!r} is neither this integration's source "
            f"({source}) nor its target ({target}): an integration may only "
            "reach the systems it declares (purpose limitation)",
        )
    if entities.complete and route.scope not in granted:
        yield Finding((*at, "scope"), f"unknown scope {route.scope!r}: no role grants it")
        return
    client = entities.clients.get(refs.get("client", ""))
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


def _known(entities: Entities, section: str) -> str:
    names = sorted(entities.declared.get(section, set()))
    return f" (known: {', '.join(names)})" if names else f" (no {section} are declared)"


def _is_false(value: object) -> bool:
    if isinstance(value, bool):
        return not value
    if value is None:
        return True
    if isinstance(value, int | float):
        return value == 0
    return str(value).strip().lower() in _FALSE_WORDS
