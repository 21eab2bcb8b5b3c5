"""private_key_jwt (RFC 7523) through the real token endpoint."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from interlock.crypto.jose import public_jwk
from interlock.identity.client_keys import ClientKeys
from interlock.oauth.client_assertion import ASSERTION_TYPE
from interlock.testing.gateway import Env

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def key(env: Env) -> Iterator[ECKey]:
    """A key pair registered for the oauth-only client (revoked afterwards)."""
    private = ECKey.generate_key("P-256", private=True)
    registry = ClientKeys(
        env.deployment.engine, env.deployment.keyring, env.gateway.gateway.manifest
    )
    kid = registry.register("oauth-only", public_jwk(private, "ES256"), use="assertion")
    private.ensure_kid()
    assert kid == private.kid
    yield private
    registry.revoke(kid, "assertion")


def assertion(env: Env, key: ECKey, **changes: Any) -> str:
    """A client assertion for oauth-only, signed by ``key``."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "oauth-only",
        "sub": "oauth-only",
        # draft-ietf-oauth-rfc7523bis: the issuer identifier is the only audience.
        "aud": f"https://127.0.0.1:{env.port}",
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
    }
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    header = {"alg": "ES256", "kid": key.kid}
    return jws.serialize_compact(header, json.dumps(claims).encode(), key, algorithms=["ES256"])


def _token(
    env: Env, form: dict[str, str], headers: dict[str, str] | None = None, *, failing: bool = False
) -> tuple[int, Any]:
    """A token request; one meant to fail comes from an address of its own.

    Failures count per (client, address): this suite's deliberate ones must not
    spend the budget of the other tests' honest requests from 127.0.0.1.
    """
    source = f"127.0.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}" if failing else None
    status, _, body = env.request(
        "POST",
        "/oauth2/token",
        {**FORM, **(headers or {})},
        urlencode(form).encode(),
        source=source,
    )
    return status, body


def _form(signed: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
        **extra,
    }


def test_a_signed_assertion_gets_a_token(env: Env, key: ECKey) -> None:
    """The registered key's assertion authenticates the client; the token opens the route."""
    status, body = _token(env, _form(assertion(env, key)))
    assert status == 200, body
    token = str(body["access_token"])
    env.issued_tokens.append(token)
    assert env.request("GET", "/orders/1001", {"Authorization": f"Bearer {token}"})[0] == 200


def test_the_issuer_alone_is_the_audience(env: Env, key: ECKey) -> None:
    """draft-ietf-oauth-rfc7523bis §4: the issuer as the sole value, a string or a one-item array."""
    assert _token(env, _form(assertion(env, key, aud=[f"https://127.0.0.1:{env.port}"])))[0] == 200


@pytest.mark.parametrize(
    "audience",
    [
        "{issuer}/oauth2/token",
        ["{issuer}", "https://other.example"],
        ["{issuer}", "{issuer}/oauth2/token"],
        ["{issuer}/oauth2/token"],
    ],
    ids=["token endpoint", "issuer and another", "issuer and token endpoint", "endpoint array"],
)
def test_the_token_endpoint_or_several_audiences_are_refused(
    env: Env, key: ECKey, audience: str | list[str]
) -> None:
    """An assertion meant for several audiences, or for the token endpoint URL, is refused.

    RFC 7523bis closes the audience-injection attack: an assertion a client made for
    one server must not authenticate it at another that shares an endpoint URL or a
    second audience value.
    """
    issuer = f"https://127.0.0.1:{env.port}"
    aud = (
        audience.format(issuer=issuer)
        if isinstance(audience, str)
        else [a.format(issuer=issuer) for a in audience]
    )
    status, body = _token(env, _form(assertion(env, key, aud=aud)), failing=True)
    assert (status, body["error"]) == (401, "invalid_client"), body


def test_a_replayed_assertion_is_refused(env: Env, key: ECKey) -> None:
    """Single-use jti: the same assertion twice fails the second time."""
    signed = assertion(env, key)
    assert _token(env, _form(signed))[0] == 200
    status, body = _token(env, _form(signed), failing=True)
    assert status == 401
    assert body["error"] == "invalid_client"


class FromNow(int):
    """Seconds from the moment the test runs (not from collection, which may be long before)."""


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "https://elsewhere.example/token"},
        {"iss": "someone-else"},
        {"exp": FromNow(3600)},  # longer than five minutes
        {"exp": FromNow(-600)},
        {"exp": None},
        {"jti": None},
        {"iat": FromNow(600)},
    ],
)
def test_bad_assertions_are_invalid_client(env: Env, key: ECKey, changes: dict[str, Any]) -> None:
    """Every RFC 7523 §3 rule is enforced."""
    now = int(time.time())
    claims = {k: now + v if isinstance(v, FromNow) else v for k, v in changes.items()}
    status, body = _token(env, _form(assertion(env, key, **claims)), failing=True)
    assert status == 401, body
    assert body == {"error": "invalid_client", "error_description": "client authentication failed"}


def test_an_unregistered_key_is_refused(env: Env, key: ECKey) -> None:
    """A key that is not registered for the client (even with the right kid) is refused."""
    stranger = ECKey.generate_key("P-256", private=True)
    now = int(time.time())
    claims = {
        "iss": "oauth-only",
        "sub": "oauth-only",
        "aud": f"https://127.0.0.1:{env.port}",
        "exp": now + 60,
        "jti": "x1",
    }
    signed = jws.serialize_compact(
        {"alg": "ES256", "kid": key.kid},
        json.dumps(claims).encode(),
        stranger,
        algorithms=["ES256"],
    )
    assert _token(env, _form(signed), failing=True)[0] == 401


def test_two_methods_or_a_wrong_type_are_invalid_request(env: Env, key: ECKey) -> None:
    """An assertion plus Basic credentials, or the wrong assertion type, is a malformed request."""
    basic = {"Authorization": "Basic " + base64.b64encode(b"oauth-only:whatever").decode()}
    status, body = _token(env, _form(assertion(env, key)), basic)
    assert (status, body["error"]) == (400, "invalid_request")
    wrong_type = _form(assertion(env, key))
    wrong_type["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
    status, body = _token(env, wrong_type)
    assert (status, body["error"]) == (400, "invalid_request")


def test_metadata_offers_private_key_jwt(env: Env) -> None:
    """RFC 8414: the method and its signing algorithms are advertised."""
    _, _, document = env.request("GET", "/.well-known/oauth-authorization-server")
    assert "private_key_jwt" in document["token_endpoint_auth_methods_supported"]
    assert "ES256" in document["token_endpoint_auth_signing_alg_values_supported"]
