"""The registry's rule for secret field names, as each consumer reads it."""

from __future__ import annotations

import pytest

from interlock.credentials.names import (
    is_credential_header,
    is_credential_parameter,
    is_secret_name,
    secret_field,
)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("db_password", "password"),
        ("PGPASSWORD", "password"),
        ("passphrase", "password"),
        ("signing_key", "key"),
        ("master_key", "key"),
        ("encryption-key", "key"),
        ("apiKey", "key"),
        ("client_secret", "key"),
        ("shared_secret_base64", "key"),
        ("refresh_token", "key"),
        ("credentials", "key"),
        ("password_file", None),
        ("token_url", None),
        ("secret_ref", None),
        ("max_tokens", None),
        ("publicToken", None),
        ("page_token", None),
        ("key", None),
    ],
)
def test_a_secret_field_is_named_by_how_it_ends(name: str, kind: str | None) -> None:
    assert secret_field(name) == kind
    assert secret_field(name, live=True) == kind


def test_a_csrf_token_is_a_secret_only_when_live() -> None:
    """In a file a CSRF token is a fixture; in a log line or a request, a live session's."""
    for name in ("csrf_token", "xsrfToken", "X-CSRF-Token"):
        assert secret_field(name) is None
        assert secret_field(name, live=True) == "key"
        assert is_secret_name(name)


def test_credential_alone_names_the_credential_used_in_a_live_event() -> None:
    """The access log's ``credential="api-key ab12…"`` is an id; in a file, a secret."""
    assert secret_field("credential") == "key"
    assert secret_field("credential", live=True) is None
    assert not is_secret_name("credential")
    assert is_secret_name("credentials")
    assert is_secret_name("db_credential")


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("Authorization", True),
        ("proxy-authorization", True),
        ("Set-Cookie", True),
        ("session", True),
        ("kek", True),
        ("client_assertion", True),
        ("session_id", False),
        ("content_type", False),
    ],
)
def test_carriers_are_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


@pytest.mark.parametrize(
    ("name", "credential"),
    [
        ("api_key", True),
        ("key", True),
        ("sig", True),
        ("access_token", True),
        ("password", True),
        ("page_token", False),
        ("limit", False),
    ],
)
def test_query_parameters_that_carry_a_credential(name: str, credential: bool) -> None:
    assert is_credential_parameter(name) is credential


@pytest.mark.parametrize(
    ("name", "credential"),
    [
        ("X-Api-Key", True),
        ("X-Auth-Token-Expiry", True),
        ("X-Session-Id", True),
        ("X-Secrets", True),
        ("Cookie2", True),
        ("X-Pwd", True),
        ("X-Signing-Key", True),
        ("Accept-Language", False),
        ("X-Request-Id", False),
        ("Idempotency-Key", False),
        ("X-Keycloak-Realm", False),
    ],
)
def test_a_header_carries_a_credential_if_any_part_names_one(name: str, credential: bool) -> None:
    assert is_credential_header(name) is credential
