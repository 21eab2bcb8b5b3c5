"""private_key_jwt (RFC 7523): assertions checked by Interlock's own ClientAssertions."""

from __future__ import annotations

import json
import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from interlock.crypto.jose import import_public_jwk
from interlock.sdk import ClientCredentials, TokenRequestError
from interlock.sdk.rfc7523 import ASSERTION_LIFETIME, ClientKey
from tests.sdk.fake_server import CLIENT_ID, FakeServer, credentials_for


def _register(server: FakeServer, key: ClientKey, alg: str) -> None:
    server.keys.keys[key.kid or "k1"] = (alg, import_public_jwk(key.as_dict(private=False)))


@pytest.mark.parametrize(
    ("make", "alg"),
    [
        (lambda: ECKey.generate_key("P-256", private=True), "ES256"),
        (lambda: OKPKey.generate_key("Ed25519", private=True), "Ed25519"),
        (lambda: RSAKey.generate_key(2048, private=True), "RS256"),
    ],
)
def test_assertion_is_accepted_by_the_server_side_check(
    server: FakeServer, make: object, alg: str
) -> None:
    """ES256, Ed25519 and RS256 assertions pass Interlock's RFC 7523 checks; a token is issued."""
    key = make()  # type: ignore[operator]
    _register(server, key, alg)
    token = credentials_for(server, private_key=key).token()
    assert token.value in server.valid


def test_assertion_claims_and_single_use(server: FakeServer) -> None:
    """iss = sub = client, aud = the issuer, exp at most 60 s after iat, a new jti each time."""
    key = ECKey.generate_key("P-256", private=True)
    _register(server, key, "ES256")
    credentials = credentials_for(server, private_key=key, scope="a")
    credentials.token()
    credentials.token(credentials.key("b"))
    claims = []
    for seen in server.token_requests:
        assert seen.form["client_assertion_type"] == (
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        )
        assert "authorization" not in seen.headers
        token = jwt.decode(seen.form["client_assertion"], key, algorithms=["ES256"])
        assert token.header["alg"] == "ES256"
        assert token.header.get("kid") == key.kid
        claims.append(token.claims)
    for claim in claims:
        assert claim["iss"] == claim["sub"] == CLIENT_ID
        assert claim["aud"] == server.issuer  # a string: the sole audience (RFC 7523bis)
        assert 0 < claim["exp"] - claim["iat"] <= ASSERTION_LIFETIME <= 60
        assert abs(claim["iat"] - time.time()) < 60
    assert claims[0]["jti"] != claims[1]["jti"]


def test_the_issuer_is_the_token_url_without_its_fixed_path() -> None:
    """Interlock's token endpoint is ``<issuer>/oauth2/token``: the issuer needs no setting."""
    key = ECKey.generate_key("P-256", private=True)
    credentials = ClientCredentials("https://gw.example:8443/oauth2/token", "c", private_key=key)
    assert credentials.issuer == "https://gw.example:8443"
    named = ClientCredentials(
        "https://gw.example/token", "c", private_key=key, issuer="https://gw.example/as"
    )
    assert named.issuer == "https://gw.example/as"
    with pytest.raises(ValueError, match="issuer"):
        ClientCredentials("https://gw.example/token", "c", private_key=key)


def test_pem_and_jwk_inputs_work(server: FakeServer) -> None:
    """A PEM private key and a private JWK dict are accepted as well as a joserfc key."""
    key = ECKey.generate_key("P-256", private=True, auto_kid=False)
    _register(server, key, "ES256")
    credentials_for(server, private_key=key.as_pem(private=True)).token()
    credentials_for(server, private_key=key.as_pem(private=True).decode()).token()
    credentials_for(server, private_key=json.loads(json.dumps(key.as_dict(private=True)))).token()
    assert server.fetches == 3


def test_unregistered_key_is_invalid_client(server: FakeServer) -> None:
    """An assertion by a key the server does not know is refused with invalid_client."""
    _register(server, ECKey.generate_key("P-256", private=True), "ES256")
    intruder = ECKey.generate_key("P-256", private=True)
    with pytest.raises(TokenRequestError) as caught:
        credentials_for(server, private_key=intruder).token()
    assert caught.value.error == "invalid_client"
