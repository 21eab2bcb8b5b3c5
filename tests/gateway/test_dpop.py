"""DPoP (RFC 9449) through the real gateway: bound tokens and every proof check."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from interlock.oauth.dpop import access_token_hash
from interlock.testing.gateway import Env

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def proof(
    key: ECKey,
    method: str,
    url: str,
    *,
    token: str | None = None,
    iat: int | None = None,
    jti: str | None = None,
    typ: str = "dpop+jwt",
    **extra: Any,
) -> str:
    """A DPoP proof signed by ``key``."""
    claims: dict[str, Any] = {
        "jti": jti or secrets.token_urlsafe(12),
        "htm": method,
        "htu": url,
        "iat": int(time.time()) if iat is None else iat,
        **extra,
    }
    if token is not None:
        claims["ath"] = access_token_hash(token)
    header = {"typ": typ, "alg": "ES256", "jwk": key.as_dict(private=False)}
    return jws.serialize_compact(header, json.dumps(claims).encode(), key, algorithms=["ES256"])


def bound_token(env: Env, secret: str, key: ECKey) -> str:
    """A DPoP-bound token for ``key``."""
    url = f"https://127.0.0.1:{env.port}/oauth2/token"
    status, _, body = env.request(
        "POST",
        "/oauth2/token",
        {**FORM, **Env.basic(secret), "DPoP": proof(key, "POST", url)},
        urlencode({"grant_type": "client_credentials"}).encode(),
    )
    assert status == 200, body
    assert body["token_type"] == "DPoP"
    token = str(body["access_token"])
    env.issued_tokens.append(token)
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["cnf"] == {"jkt": key.thumbprint()}
    return token


def _call(env: Env, token: str, dpop: str | None, scheme: str = "DPoP") -> tuple[int, Any, Any]:
    headers = {"Authorization": f"{scheme} {token}"}
    if dpop is not None:
        headers["DPoP"] = dpop
    return env.request("GET", "/orders/1001", headers)


@pytest.fixture
def key() -> ECKey:
    """The client's DPoP key pair."""
    return ECKey.generate_key("P-256", private=True)


def url(env: Env, path: str = "/orders/1001") -> str:
    """The URI the gateway sees for ``path``."""
    return f"https://127.0.0.1:{env.port}{path}"


def test_bound_token_with_a_valid_proof_is_accepted(env: Env, secret: str, key: ECKey) -> None:
    """The token endpoint binds the token; the route accepts it with a fresh proof each time."""
    token = bound_token(env, secret, key)
    for _ in range(2):
        status, _, body = _call(env, token, proof(key, "GET", url(env), token=token))
        assert status == 200, body


def _refused(status: int, headers: dict[str, str], body: Any) -> None:
    assert status == 401, body
    assert headers["content-type"].startswith("application/problem+json")
    assert body["detail"] in {
        "the DPoP proof is invalid",
        "send exactly one DPoP proof",
        "this access token is DPoP-bound: send it as Authorization: DPoP with a proof",
    }
    assert "DPoP" in headers["www-authenticate"]


def test_missing_proof_is_refused(env: Env, secret: str, key: ECKey) -> None:
    """A bound token without a proof is refused."""
    token = bound_token(env, secret, key)
    _refused(*_call(env, token, None))


def test_bound_token_as_bearer_is_refused(env: Env, secret: str, key: ECKey) -> None:
    """Presented as a plain Bearer token, a stolen bound token is useless."""
    token = bound_token(env, secret, key)
    status, headers, body = _call(env, token, None, scheme="Bearer")
    assert status == 401
    assert "DPoP-bound" in body["detail"]
    assert headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/orders/1001"), ("GET", "/orders/1002"), ("GET", "/orders/1001/other")],
)
def test_proof_for_another_method_or_url_is_refused(
    env: Env, secret: str, key: ECKey, method: str, path: str
) -> None:
    """htm and htu must name this very request."""
    token = bound_token(env, secret, key)
    _refused(*_call(env, token, proof(key, method, url(env, path), token=token)))


def test_query_and_default_port_do_not_matter_but_host_does(
    env: Env, secret: str, key: ECKey
) -> None:
    """htu is compared without query and fragment (RFC 9449 §4.3 step 9)."""
    token = bound_token(env, secret, key)
    with_query = proof(key, "GET", url(env) + "?x=1#frag", token=token)
    assert _call(env, token, with_query)[0] == 200
    other_host = proof(key, "GET", f"https://evil.example:{env.port}/orders/1001", token=token)
    _refused(*_call(env, token, other_host))


def test_replayed_proof_is_refused(env: Env, secret: str, key: ECKey) -> None:
    """The same proof twice: the second is a replay."""
    token = bound_token(env, secret, key)
    once = proof(key, "GET", url(env), token=token)
    assert _call(env, token, once)[0] == 200
    _refused(*_call(env, token, once))


@pytest.mark.parametrize("age", [-3600, -120, 120])
def test_stale_or_future_iat_is_refused(env: Env, secret: str, key: ECKey, age: int) -> None:
    """iat must be within the acceptance window."""
    token = bound_token(env, secret, key)
    _refused(
        *_call(env, token, proof(key, "GET", url(env), token=token, iat=int(time.time()) + age))
    )


def test_proof_by_another_key_is_refused(env: Env, secret: str, key: ECKey) -> None:
    """A valid proof by a key other than the bound one is refused."""
    token = bound_token(env, secret, key)
    thief = ECKey.generate_key("P-256", private=True)
    _refused(*_call(env, token, proof(thief, "GET", url(env), token=token)))


def test_wrong_or_missing_ath_is_refused(env: Env, secret: str, key: ECKey) -> None:
    """ath must be the hash of the presented token."""
    token = bound_token(env, secret, key)
    other = bound_token(env, secret, key)
    _refused(*_call(env, token, proof(key, "GET", url(env), token=other)))
    _refused(*_call(env, token, proof(key, "GET", url(env))))


def test_malformed_proofs_are_refused(env: Env, secret: str, key: ECKey) -> None:
    """Wrong typ, private key in the header, HS256, garbage, two proofs."""
    token = bound_token(env, secret, key)
    _refused(*_call(env, token, proof(key, "GET", url(env), token=token, typ="JWT")))
    leaky_header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=True)}
    claims = {"jti": "x", "htm": "GET", "htu": url(env), "iat": int(time.time())}
    leaky = jws.serialize_compact(
        leaky_header, json.dumps(claims).encode(), key, algorithms=["ES256"]
    )
    _refused(*_call(env, token, leaky))
    _refused(*_call(env, token, "eyJhbGciOiJub25lIn0.e30."))


def test_two_proof_headers_are_refused(env: Env, secret: str, key: ECKey) -> None:
    """Exactly one DPoP header is allowed (RFC 9449 §4.3 step 1)."""
    token = bound_token(env, secret, key)
    first = proof(key, "GET", url(env), token=token)
    second = proof(key, "GET", url(env), token=token)
    request = (
        f"GET /orders/1001 HTTP/1.1\r\nHost: 127.0.0.1:{env.port}\r\n"
        f"Authorization: DPoP {token}\r\nDPoP: {first}\r\nDPoP: {second}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    answer = env.raw(request)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_unbound_token_with_dpop_scheme_is_refused(env: Env, secret: str, key: ECKey) -> None:
    """The DPoP scheme with a plain Bearer token is refused."""
    status, _, body = env.request(
        "POST",
        "/oauth2/token",
        {**FORM, **Env.basic(secret)},
        urlencode({"grant_type": "client_credentials"}).encode(),
    )
    token = str(body["access_token"])
    env.issued_tokens.append(token)
    status, _, body = _call(env, token, proof(key, "GET", url(env), token=token))
    assert status == 401
    assert body["detail"] == "this access token is not DPoP-bound"


def test_token_endpoint_refuses_a_bad_proof(env: Env, secret: str, key: ECKey) -> None:
    """RFC 9449 §5: invalid_dpop_proof from the token endpoint, no token issued."""
    wrong_url = proof(key, "POST", f"https://127.0.0.1:{env.port}/elsewhere")
    status, _, body = env.request(
        "POST",
        "/oauth2/token",
        {**FORM, **Env.basic(secret), "DPoP": wrong_url},
        urlencode({"grant_type": "client_credentials"}).encode(),
    )
    assert status == 400
    assert body["error"] == "invalid_dpop_proof"
    assert "access_token" not in body


BAD_HTU_PORTS = ("99999", "x")


@pytest.mark.parametrize("port", BAD_HTU_PORTS)
def test_a_proof_whose_htu_is_no_uri_is_refused_at_a_route(
    env: Env, secret: str, key: ECKey, port: str
) -> None:
    """A port out of range or a broken IPv6 host in htu: 401 invalid_dpop_proof, never 500."""
    token = bound_token(env, secret, key)
    for htu in (f"https://127.0.0.1:{port}/orders/1001", "https://[::1/orders/1001"):
        status, headers, body = _call(env, token, proof(key, "GET", htu, token=token))
        _refused(status, headers, body)
        assert 'error="invalid_dpop_proof"' in headers["www-authenticate"]


@pytest.mark.parametrize("port", BAD_HTU_PORTS)
def test_a_proof_whose_htu_is_no_uri_is_refused_at_the_token_endpoint(
    env: Env, secret: str, key: ECKey, port: str
) -> None:
    """The same proofs at /oauth2/token: 400 invalid_dpop_proof (RFC 9449 §5), never 500."""
    for htu in (f"https://127.0.0.1:{port}/oauth2/token", "https://[::1/oauth2/token"):
        status, _, body = env.request(
            "POST",
            "/oauth2/token",
            {**FORM, **Env.basic(secret), "DPoP": proof(key, "POST", htu)},
            urlencode({"grant_type": "client_credentials"}).encode(),
        )
        assert status == 400, body
        assert body["error"] == "invalid_dpop_proof"
        assert "access_token" not in body


def test_metadata_advertises_dpop(env: Env) -> None:
    """RFC 9449 §5.1: dpop_signing_alg_values_supported."""
    status, _, document = env.request("GET", "/.well-known/oauth-authorization-server")
    assert status == 200
    assert "ES256" in document["dpop_signing_alg_values_supported"]


def test_introspection_reports_the_binding(env: Env, secret: str, key: ECKey) -> None:
    """RFC 9449 §6.2: token_type DPoP and the cnf claim."""
    token = bound_token(env, secret, key)
    status, _, body = env.request(
        "POST",
        "/oauth2/introspect",
        {**FORM, **Env.basic(secret)},
        urlencode({"token": token}).encode(),
    )
    assert status == 200
    assert body["active"] is True
    assert body["token_type"] == "DPoP"
    assert body["cnf"] == {"jkt": key.thumbprint()}


def _mismatched_proof(
    env: Env, alg: str, signer: Any, method: str, path: str, **claims: Any
) -> str:
    """A proof whose header names ``alg`` and embeds ``signer``'s public key, signed by it
    with ``alg``'s primitive: what joserfc itself refuses to make."""
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": signer.as_dict(private=False)}
    body = {
        "jti": secrets.token_urlsafe(12),
        "htm": method,
        "htu": url(env, path),
        "iat": int(time.time()),
        **claims,
    }
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}"
    try:
        signature = jws.JWSRegistry.algorithms[alg].sign(signing_input.encode(), signer)
    except (AttributeError, TypeError):  # a key of another type cannot even sign
        signature = b"x" * 64
    return f"{signing_input}.{_b64(signature)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


MISMATCHED: dict[str, Callable[[], ECKey | RSAKey]] = {
    "ES256 with an RSA key": lambda: RSAKey.generate_key(2048, private=True),
    "ES256 with a P-384 key": lambda: ECKey.generate_key("P-384", private=True),
    "ES256 with a secp256k1 key": lambda: ECKey.generate_key("secp256k1", private=True),
}


@pytest.mark.parametrize("case", sorted(MISMATCHED))
def test_a_proof_whose_key_the_algorithm_does_not_name_is_invalid(
    env: Env, secret: str, case: str
) -> None:
    """RFC 7518 §3.4: an ES256 proof is by a P-256 key; anything else is invalid_dpop_proof.

    An RSA key under an ES256 header used to raise AttributeError (a 500); a P-384
    or secp256k1 key verified.
    """
    signer = MISMATCHED[case]()
    status, _, body = env.request(
        "POST",
        "/oauth2/token",
        {
            **FORM,
            **Env.basic(secret),
            "DPoP": _mismatched_proof(env, "ES256", signer, "POST", "/oauth2/token"),
        },
        urlencode({"grant_type": "client_credentials"}).encode(),
    )
    assert (status, body.get("error")) == (400, "invalid_dpop_proof"), body
    # At a route, with a token bound to that very key: the same proof is a 401.
    token = bound_token(env, secret, ECKey.generate_key("P-256", private=True))
    at_route = _mismatched_proof(
        env, "ES256", signer, "GET", "/orders/1001", ath=access_token_hash(token)
    )
    _refused(*_call(env, token, at_route))
