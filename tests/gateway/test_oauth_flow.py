"""Client credentials end to end: secrets, the token endpoint, tokens accepted on routes."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

import pytest

from interlock.identity.client_secrets import ClientSecrets
from interlock.testing.gateway import Env

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _basic(client: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client}:{secret}".encode()).decode()}


def _token(
    env: Env, headers: dict[str, str], **form: str
) -> tuple[int, dict[str, str], dict[str, object]]:
    status, got, body = env.request(
        "POST", "/oauth2/token", {**FORM, **headers}, urlencode(form).encode()
    )
    return status, got, body


def test_basic_credentials_get_a_token_that_opens_the_route(env: Env, secret: str) -> None:
    """client_secret_basic -> RFC 9068 token -> accepted by the gateway for a granted scope."""
    status, headers, body = _token(
        env, _basic("oauth-only", secret), grant_type="client_credentials"
    )
    assert status == 200, body
    assert headers["cache-control"] == "no-store"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert body["scope"] == "orders.read vault.read vault.write"  # every scope its roles grant
    token = str(body["access_token"])
    env.issued_tokens.append(token)
    header = json.loads(base64.urlsafe_b64decode(token.split(".", maxsplit=1)[0] + "=="))
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == claims["client_id"] == "oauth-only"
    assert claims["iss"] == f"https://127.0.0.1:{env.port}"
    # No resource asked for: the systems of the routes it may call (it is a caller of
    # integrations reaching the ERP and the rogue system), RFC 8707.
    assert isinstance(claims["aud"], list)
    assert len(claims["aud"]) == 2
    assert all(aud.startswith("https://localhost:") for aud in claims["aud"])
    assert {"iat", "exp", "jti"} <= claims.keys()
    status, _, order = env.request("GET", "/orders/1001", {"Authorization": f"Bearer {token}"})
    assert (status, order["id"]) == (200, "1001")


def test_post_credentials_work_too(env: Env, secret: str) -> None:
    """client_secret_post is the other supported method."""
    status, _, body = _token(
        env, {}, grant_type="client_credentials", client_id="oauth-only", client_secret=secret
    )
    assert status == 200, body


def test_two_authentication_methods_at_once_are_refused(env: Env, secret: str) -> None:
    """Basic plus client_secret in the body is invalid_request."""
    status, _, body = _token(
        env, _basic("oauth-only", secret), grant_type="client_credentials", client_secret=secret
    )
    assert (status, body["error"]) == (400, "invalid_request")


def test_wrong_secret_is_invalid_client_with_a_basic_challenge(env: Env, secret: str) -> None:
    """401 invalid_client, and WWW-Authenticate because Basic was used (RFC 6749 §5.2)."""
    wrong = secret[:-10] + ("A" * 10 if not secret.endswith("A" * 10) else "B" * 10)
    status, headers, body = _token(
        env, _basic("oauth-only", wrong), grant_type="client_credentials"
    )
    assert (status, body["error"]) == (401, "invalid_client")
    assert headers["www-authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({}, "invalid_request"),
        ({"grant_type": "client_credentials", "scope": "orders.write"}, "invalid_scope"),
        (
            {"grant_type": "client_credentials", "resource": "https://elsewhere.example"},
            "invalid_target",
        ),
    ],
)
def test_grant_errors_follow_rfc_6749(
    env: Env, secret: str, form: dict[str, str], error: str
) -> None:
    """Each refusal uses the RFC error code with status 400."""
    status, _, body = _token(env, _basic("oauth-only", secret), **form)
    assert (status, body["error"]) == (400, error)


def test_api_key_clients_cannot_get_tokens(env: Env) -> None:
    """An API key is not a client secret."""
    token, _ = env.key(["orders.read"])
    status, _, body = _token(env, _basic("order-sync", token), grant_type="client_credentials")
    assert (status, body["error"]) == (401, "invalid_client")


def test_tampered_or_foreign_tokens_are_401(env: Env, secret: str) -> None:
    """A changed payload, or a token signed by someone else's key, is refused."""
    from interlock.crypto.jose import generate_signing_key, sign_compact

    _, _, body = _token(env, _basic("oauth-only", secret), grant_type="client_credentials")
    token = str(body["access_token"])
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scope"] = "orders.read orders.write"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert (
        env.request(
            "GET", "/orders/1001", {"Authorization": f"Bearer {head}.{forged}.{signature}"}
        )[0]
        == 401
    )
    attacker = generate_signing_key("ES256")
    foreign = sign_compact(json.dumps(claims).encode(), attacker, "ES256", {"typ": "at+jwt"})
    assert env.request("GET", "/orders/1001", {"Authorization": f"Bearer {foreign}"})[0] == 401


def test_form_body_is_required(env: Env) -> None:
    """A JSON body is not a token request."""
    status, _, body = env.request(
        "POST", "/oauth2/token", {"Content-Type": "application/json"}, b"{}"
    )
    assert (status, body["error"]) == (400, "invalid_request")


def test_no_secret_or_token_reaches_the_logs(env: Env, secret: str) -> None:
    """After the flows above, neither client secrets nor access tokens appear in the log."""
    _, _, body = _token(env, _basic("oauth-only", secret), grant_type="client_credentials")
    env.issued_tokens.append(str(body["access_token"]))
    env.request("GET", "/orders/1001", {"Authorization": f"Bearer {body['access_token']}x"})
    log = env.logs.getvalue()
    assert "token request refused" in log or "request" in log
    for value in env.issued_tokens:
        assert value not in log


def test_metadata_describes_the_server(env: Env) -> None:
    """RFC 8414 metadata names the issuer, endpoints, grant and auth methods."""
    status, _, body = env.request("GET", "/.well-known/oauth-authorization-server")
    issuer = f"https://127.0.0.1:{env.port}"
    assert status == 200
    assert body["issuer"] == issuer
    assert body["token_endpoint"] == f"{issuer}/oauth2/token"
    assert body["jwks_uri"] == f"{issuer}/.well-known/jwks.json"
    assert body["grant_types_supported"] == ["client_credentials"]
    assert "orders.read" in body["scopes_supported"]


def test_a_third_active_secret_is_refused(env: Env) -> None:
    """Two active secrets per client allow rotation; a third is refused."""
    from interlock.errors import InvalidRequestError

    secrets = ClientSecrets(
        env.deployment.engine, env.deployment.keyring, env.gateway.gateway.manifest
    )
    first, _ = secrets.create("oauth-only")
    second, _ = secrets.create("oauth-only")
    try:
        with pytest.raises(InvalidRequestError, match="2 active secrets"):
            secrets.create("oauth-only")
    finally:
        secrets.revoke(first)
        secrets.revoke(second)


def test_revoked_token_is_refused_everywhere_and_introspects_inactive(
    env: Env, secret: str
) -> None:
    """RFC 7009 revocation reaches the gateway's verifier; RFC 7662 then says inactive."""
    auth = _basic("oauth-only", secret)
    _, _, body = _token(env, auth, grant_type="client_credentials")
    token = str(body["access_token"])
    env.issued_tokens.append(token)
    bearer = {"Authorization": f"Bearer {token}"}
    assert env.request("GET", "/orders/1001", bearer)[0] == 200
    status, _, active = env.request(
        "POST", "/oauth2/introspect", {**FORM, **auth}, urlencode({"token": token}).encode()
    )
    assert status == 200
    assert active["active"] is True
    assert active["client_id"] == "oauth-only"
    assert active["scope"] == "orders.read vault.read vault.write"
    status, _, _ = env.request(
        "POST", "/oauth2/revoke", {**FORM, **auth}, urlencode({"token": token}).encode()
    )
    assert status == 200
    assert env.request("GET", "/orders/1001", bearer)[0] == 401
    _, _, inactive = env.request(
        "POST", "/oauth2/introspect", {**FORM, **auth}, urlencode({"token": token}).encode()
    )
    assert inactive == {"active": False}


def test_revocation_needs_client_authentication_and_ignores_junk(env: Env, secret: str) -> None:
    """Unauthenticated revocation is 401; an unknown token is a silent 200 (RFC 7009 §2.2)."""
    body = urlencode({"token": "not-a-token"}).encode()
    assert env.request("POST", "/oauth2/revoke", FORM, body)[0] == 401
    assert (
        env.request("POST", "/oauth2/revoke", {**FORM, **_basic("oauth-only", secret)}, body)[0]
        == 200
    )
    assert env.request("POST", "/oauth2/introspect", FORM, body)[0] == 401


def _introspect(env: Env, auth: dict[str, str], token: str) -> dict[str, Any]:
    status, _, body = env.request(
        "POST", "/oauth2/introspect", {**FORM, **auth}, urlencode({"token": token}).encode()
    )
    assert status == 200, body
    return dict(body)


def test_another_clients_token_introspects_inactive(env: Env, secret: str) -> None:
    """RFC 7662 §4: a client learns nothing about tokens it neither owns nor may introspect.

    cert-sync introspecting oauth-only's valid token used to get its scope, audience,
    jti and cnf; it now gets ``{"active": false}``, as for a token that does not exist.
    """
    _, _, body = _token(env, _basic("oauth-only", secret), grant_type="client_credentials")
    token = str(body["access_token"])
    env.issued_tokens.append(token)
    assert _introspect(env, _basic("oauth-only", secret), token)["active"] is True
    with env.client_secret("cert-sync") as other:
        assert _introspect(env, _basic("cert-sync", other), token) == {"active": False}


def test_a_client_allowed_to_introspect_sees_every_token(env: Env, secret: str) -> None:
    """``introspection: all`` in the manifest: a resource server may ask about any token."""
    _, _, body = _token(env, _basic("oauth-only", secret), grant_type="client_credentials")
    token = str(body["access_token"])
    env.issued_tokens.append(token)
    with env.client_secret("introspector") as allowed:
        answer = _introspect(env, _basic("introspector", allowed), token)
    assert answer["active"] is True
    assert answer["client_id"] == "oauth-only"
