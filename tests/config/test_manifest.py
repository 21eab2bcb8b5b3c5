"""Field rules of the manifest models, each reported at the offending value."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from interlock.config.units import Rate
from tests.config.manifests import VALID, assert_error_after_edit, check, messages


def test_the_baseline_manifest_is_valid(tmp_path: Path) -> None:
    """The fixture every other test mutates is itself clean."""
    report = check(tmp_path, VALID)
    assert report.ok, messages(report)
    assert report.warnings == ()
    manifest = report.manifest
    assert manifest is not None
    assert manifest.integrations["order-sync"].retention == timedelta(days=90)
    assert manifest.tls.min_version == "1.2"
    assert [r.path for r in manifest.integrations["order-sync"].routes] == [
        "/orders/{id}",
        "/accounts/{id}/orders",
    ]


@pytest.mark.parametrize(
    ("old", "new", "path", "fragment"),
    [
        ('"https://crm.example.com"', '"http://crm.example.com"', "systems.crm.url", "https://"),
        ('"https://crm.example.com"', '"ftp://crm.example.com"', "systems.crm.url", "https://"),
        (
            '"https://crm.example.com"',
            '"https://svc:pw@crm.example.com"',
            "systems.crm.url",
            "must not carry credentials",
        ),
        ('"secret://erp/api-key"', '"s3cr3t-value"', "systems.erp.credentials", "reference"),
        ('"pki:internal"', '"trust-me"', "systems.erp.ca", "ca must be"),
        ("location: US", "location: usa", "systems.crm.location", "ISO 3166-1"),
        (
            "legal_basis: contract",
            "legal_basis: because",
            "integrations.order-sync.legal_basis",
            "must be",
        ),
        (
            "retention: P90D",
            "retention: forever",
            "integrations.order-sync.retention",
            "not a duration",
        ),
        (
            "safeguard: SCC",
            "safeguard: pinky-promise",
            "integrations.order-sync.transfer.safeguard",
            "must be",
        ),
        ("[oauth2, mtls]", "[oauth2, password]", "clients.order-sync.auth[1]", "must be"),
        ("[oauth2, mtls]", "[]", "clients.order-sync.auth", "at least 1"),
        (
            '"/orders/{id}"',
            '"orders/{id}"',
            "integrations.order-sync.routes[0].path",
            "starts with '/'",
        ),
        ('"/orders/{id}"', '"/orders//{id}"', "integrations.order-sync.routes[0].path", "empty"),
        ('"/orders/{id}"', '"/orders/%2e%2e"', "integrations.order-sync.routes[0].path", "'%'"),
        ('"/orders/{id}"', '"/orders;x/{id}"', "integrations.order-sync.routes[0].path", "';'"),
        (
            '"/orders/{id}"',
            '"/orders/{id}/{id}"',
            "integrations.order-sync.routes[0].path",
            "duplicate parameter",
        ),
        ("method: GET", "method: FETCH", "integrations.order-sync.routes[0].method", "must be"),
        (
            "[user.contact.email]",
            "[Email]",
            "integrations.order-sync.data_categories[0]",
            "fideslang key",
        ),
        (
            '"/orders/{id}"',
            '"/orders/{id}/"',
            "integrations.order-sync.routes[0].path",
            "does not end with '/'",
        ),
        ('"/orders/{id}"', '"/orders/../{id}"', "integrations.order-sync.routes[0].path", "'..'"),
        ('"/orders/{id}"', '"/orders/{id}?x=1"', "integrations.order-sync.routes[0].path", "'?'"),
        ('"/orders/{id}"', '"/orders/{id}#x"', "integrations.order-sync.routes[0].path", "'#'"),
        ('"pki:internal"', "none", "systems.erp.ca", "CWE-295"),
        # A control character in a path never reaches OpenSSL (a NUL made it raise).
        ('"pki:internal"', '"file:/tmp/ca\\0.pem"', "systems.erp.ca", "ca must be"),
        ('"pki:internal"', '"file:/tmp/ca\\x7f.pem"', "systems.erp.ca", "ca must be"),
        ('"pki:internal"', '"file:/tmp/ca\\e.pem"', "systems.erp.ca", "ca must be"),
        ('"pki:internal"', '"pki:internal\\n"', "systems.erp.ca", "ca must be"),
        ('"pki:internal"', "false", "systems.erp.ca", "CWE-295"),
        ("scopes: [orders.read]", "scopes: []", "roles.order-reader.scopes", "at least 1 item"),
        ("scopes: [orders.read]", "scopes: orders.read", "roles.order-reader.scopes", "a list"),
        (
            "scopes: [orders.read]",
            "scopes: [Orders.Read]",
            "roles.order-reader.scopes[0]",
            "dot-separated lower-case words",
        ),
        (
            "purpose: Sync confirmed orders to CRM",
            "purpose: '  '",
            "integrations.order-sync.purpose",
            "must not be empty",
        ),
        ("erp: {url", "ERP_1: {url", "systems.ERP_1", "invalid name"),
    ],
)
def test_field_rules_are_located(
    tmp_path: Path, old: str, new: str, path: str, fragment: str
) -> None:
    """Each bad value is one located error naming its field path."""
    assert_error_after_edit(tmp_path, old, new, path, fragment)


def test_method_is_case_insensitive(tmp_path: Path) -> None:
    """`get` is read as GET."""
    report = check(tmp_path, VALID.replace("method: GET", "method: get"))
    assert report.manifest is not None
    assert report.manifest.integrations["order-sync"].routes[0].method == "GET"


def test_rate_limits_and_response_fields_are_typed(tmp_path: Path) -> None:
    """Rates become Rate values; field paths with [] are accepted."""
    text = VALID.replace(
        "scope: orders.read}",
        "scope: orders.read, rate_limit: {per_client: 1000/min, per_ip: 5000/min},"
        ' response_fields: [id, "items[].sku", customer.email]}',
    )
    report = check(tmp_path, text)
    assert report.manifest is not None, messages(report)
    route = report.manifest.integrations["order-sync"].routes[0]
    assert route.rate_limit is not None
    assert route.rate_limit.per_client == Rate(1000, timedelta(minutes=1))
    assert route.response_fields == ("id", "items[].sku", "customer.email")


def test_a_replay_policy_defaults_to_five_minutes_and_required_nonces(tmp_path: Path) -> None:
    """`replay: {}` means signed requests, a 5-minute window and single-use nonces."""
    report = check(
        tmp_path, VALID.replace("scope: orders.read}", "scope: orders.read, replay: {}}")
    )
    assert report.manifest is not None, messages(report)
    replay = report.manifest.integrations["order-sync"].routes[0].replay
    assert replay is not None
    assert (replay.window, replay.nonce) == (timedelta(minutes=5), "required")
    text = VALID.replace(
        "scope: orders.read}", "scope: orders.read, replay: {window: 30s, nonce: optional}}"
    )
    report = check(tmp_path, text)
    assert report.manifest is not None, messages(report)
    replay = report.manifest.integrations["order-sync"].routes[0].replay
    assert replay is not None
    assert (replay.window, replay.nonce) == (timedelta(seconds=30), "optional")


@pytest.mark.parametrize(
    ("policy", "fragment"),
    [
        ("{window: 2h}", "between 10s and 1h"),
        ("{window: 5s}", "between 10s and 1h"),
        ("{window: 300}", "not a bare number"),
        ("{nonce: never}", "'required' or 'optional'"),
        ("{signature: true}", "unknown field"),
    ],
)
def test_a_bad_replay_policy_is_refused_at_its_field(
    tmp_path: Path, policy: str, fragment: str
) -> None:
    """Window bounds, nonce values and unknown keys are named at the offending field."""
    text = VALID.replace("scope: orders.read}", f"scope: orders.read, replay: {policy}}}")
    report = check(tmp_path, text)
    assert any(
        d.path.startswith("integrations.order-sync.routes[0].replay") and fragment in d.message
        for d in report.errors
    ), messages(report)


def test_upstream_path_may_only_use_the_routes_parameters(tmp_path: Path) -> None:
    """An upstream parameter the caller never supplies is refused."""
    text = VALID.replace(
        "upstream: erp, scope: orders.read}",
        'upstream: erp, upstream_path: "/api/{tenant}/orders/{id}", scope: orders.read}',
    )
    report = check(tmp_path, text)
    assert any("tenant" in d.message for d in report.errors), messages(report)


@pytest.mark.parametrize("version", ['"1.0"', '"1.1"', "TLSv1.1", "SSLv3"])
def test_tls_below_1_2_is_refused_with_the_reason(tmp_path: Path, version: str) -> None:
    """Global and per-system TLS minimums below 1.2 are errors that say why."""
    text = VALID.replace("location: US}", f"location: US, tls: {{min_version: {version}}}}}")
    report = check(tmp_path, f"tls: {{min_version: {version}}}\n" + text)
    paths = {d.path for d in report.errors}
    assert paths == {"tls.min_version", "systems.crm.tls.min_version"}
    assert all("RFC 8996" in d.message for d in report.errors)


def test_tls_1_3_minimum_is_accepted(tmp_path: Path) -> None:
    """A stricter floor is fine."""
    report = check(tmp_path, 'tls: {min_version: "1.3"}\n' + VALID)
    assert report.ok


@pytest.mark.parametrize(
    ("written", "expected"), [("1.2", "1.2"), ('"1.3"', "1.3"), ("TLSv1.3", "1.3")]
)
def test_tls_minimum_is_a_typed_literal(tmp_path: Path, written: str, expected: str) -> None:
    """An unquoted 1.2 (a YAML float) and TLSv1.3 both become the literal version text."""
    report = check(tmp_path, f"tls: {{min_version: {written}}}\n" + VALID)
    assert report.manifest is not None, messages(report)
    assert report.manifest.tls.min_version == expected


def test_route_without_upstream_path_and_limits_takes_the_defaults(tmp_path: Path) -> None:
    """Optional route fields default to None; the manifest models are frozen."""
    report = check(tmp_path, VALID)
    assert report.manifest is not None
    route = report.manifest.integrations["order-sync"].routes[0]
    assert (route.upstream_path, route.rate_limit, route.response_fields) == (None, None, None)
    with pytest.raises(ValidationError):
        route.scope = "orders.write"  # type: ignore[misc]


@pytest.mark.parametrize(
    "path",
    ["/v1/secrets/{name}", "/v1/privacy/requests", "/oauth2/token", "/.well-known/x", "/metrics"],
)
def test_routes_cannot_take_the_gateways_own_paths(path: str) -> None:
    """A route there would be shadowed by the gateway's own endpoint: refused, located."""
    from interlock.config.manifest import Route

    with pytest.raises(ValueError, match="gateway's own endpoint"):
        Route.model_validate(
            {"method": "GET", "path": path, "upstream": "erp", "scope": "orders.read"}
        )


def test_introspection_is_own_tokens_unless_the_client_may_introspect_all(
    tmp_path: Path,
) -> None:
    """RFC 7662 §4: ``introspection: all`` is an explicit grant; the default is ``own``."""
    report = check(tmp_path, VALID)
    assert report.manifest is not None
    assert report.manifest.clients["order-sync"].introspection == "own"
    text = VALID.replace(
        "roles: [order-reader, account-writer]}",
        "roles: [order-reader, account-writer], introspection: all}",
    )
    report = check(tmp_path, text)
    assert report.manifest is not None, messages(report)
    assert report.manifest.clients["order-sync"].introspection == "all"


@pytest.mark.parametrize(
    ("old", "new", "path", "fragment"),
    [
        (
            "roles: [order-reader, account-writer]}",
            "roles: [order-reader, account-writer], introspection: everything}",
            "clients.order-sync.introspection",
            "must be 'own' or 'all'",
        ),
        (
            "auth: [oauth2, mtls], roles: [order-reader, account-writer]}",
            "auth: [mtls], roles: [order-reader, account-writer], introspection: all}",
            "clients.order-sync",
            "needs oauth2",
        ),
    ],
)
def test_a_bad_introspection_setting_is_located(
    tmp_path: Path, old: str, new: str, path: str, fragment: str
) -> None:
    """An unknown value, or ``all`` for a client that cannot authenticate at the endpoint."""
    assert_error_after_edit(tmp_path, old, new, path, fragment)


_ISSUER = """\
trusted_issuers:
  idp:
    issuer: "{issuer}"
    jwks_uri: "{jwks_uri}"
    audiences: [interlock-gateway]
    client_claim: azp
    clients: {{idp-order-sync: order-sync}}
"""
_IDP = "https://idp.example/realms/a"


def _issuer(issuer: str = _IDP, jwks_uri: str = _IDP + "/certs") -> str:
    return VALID + _ISSUER.format(issuer=issuer, jwks_uri=jwks_uri)


def test_a_trusted_issuer_with_plain_urls_is_valid(tmp_path: Path) -> None:
    """The baseline of the issuer URL tests below loads."""
    report = check(tmp_path, _issuer())
    assert report.ok, messages(report)


@pytest.mark.parametrize(
    ("field", "url", "fragment"),
    [
        ("jwks_uri", "https://admin:{pw}@idp.example/certs", "credentials"),
        ("jwks_uri", "https://idp.example/certs?client_secret={pw}", "credentials"),
        ("jwks_uri", "https:///certs", "no host"),
        ("issuer", "https:", "no host"),
        ("issuer", "https://admin:{pw}@idp.example/realms/a", "credentials"),
    ],
)
def test_trusted_issuer_urls_need_a_host_and_carry_no_credentials(
    tmp_path: Path, field: str, url: str, fragment: str
) -> None:
    """An issuer or JWKS URL with a password or without a host is refused; no echo."""
    password = "pw-" + os.urandom(6).hex()
    report = check(tmp_path, _issuer(**{field: url.format(pw=password)}))
    matching = [d for d in report.errors if d.path == f"trusted_issuers.idp.{field}"]
    assert matching, messages(report)
    assert fragment in matching[0].message
    assert password not in "".join(str(d) for d in report.errors)
