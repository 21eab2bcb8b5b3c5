"""Trusted issuers' algorithms: PS256 and ES384 besides ES256, Ed25519 and RS256, per issuer.

FAPI 2.0 names PS256 and ES256; Keycloak and Auth0 sign with PS256 or ES384
when told to. Each issuer's ``algorithms`` is its own allow-list, and the key
is bound to the algorithm: a PS256 token under an issuer that lists RS256 is
refused even though the same RSA key would verify it.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, RSAKey

from interlock.config.loader import load_manifest
from interlock.errors import ConfigError, InvalidTokenError
from interlock.gateway.tls import client_context
from interlock.oauth.signing_keys import SigningKeys
from interlock.oauth.tokens import AccessTokenVerifier
from interlock.oauth.trusted import trusted_policies
from interlock.store import Deployment

ISSUER = "https://gateway.test"
EXTERNAL = "https://idp.test/realms/acme"

MANIFEST = """\
version: 1
roles:
  reader: {{scopes: [orders.read]}}
clients:
  order-sync: {{auth: [oauth2], roles: [reader]}}
trusted_issuers:
  idp:
    issuer: {issuer}
    jwks_file: {jwks}
    audiences: [interlock-gateway]
    algorithms: {algorithms}
    client_claim: azp
    clients: {{idp-order-sync: order-sync}}
"""


def _verifier(
    deployment: Deployment, tmp_path: Path, algorithms: list[str], keys: list[dict[str, Any]]
) -> AccessTokenVerifier:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": keys}))
    path = tmp_path / "interlock.yaml"
    path.write_text(MANIFEST.format(issuer=EXTERNAL, jwks=jwks, algorithms=json.dumps(algorithms)))
    manifest = load_manifest(path)
    signing = SigningKeys(deployment.engine, deployment.keyring, "ES256")
    signing.ensure()
    verifier = AccessTokenVerifier(signing, ISSUER, manifest)
    verifier.trusted = trusted_policies(manifest, lambda _ca: client_context(None))
    return verifier


def _token(key: ECKey | RSAKey, alg: str) -> str:
    now = int(time.time())
    claims = {
        "iss": EXTERNAL,
        "azp": "idp-order-sync",
        "aud": "interlock-gateway",
        "scope": "orders.read",
        "iat": now,
        "exp": now + 60,
    }
    header = {"alg": alg, "typ": "at+jwt", "kid": key.kid}
    return jws.serialize_compact(header, json.dumps(claims).encode(), key, algorithms=[alg])


def _public(key: ECKey | RSAKey, **members: str) -> dict[str, Any]:
    return {**key.as_dict(private=False), "use": "sig", **members}


@pytest.mark.parametrize(
    ("alg", "key"),
    [
        ("PS256", RSAKey.generate_key(2048, private=True)),
        ("ES384", ECKey.generate_key("P-384", private=True)),
    ],
)
def test_ps256_and_es384_tokens_verify_when_the_issuer_lists_them(
    deployment: Deployment, tmp_path: Path, alg: str, key: ECKey | RSAKey
) -> None:
    """An issuer that signs PS256 or ES384 can be trusted (the manifest refused both)."""
    key.ensure_kid()
    verifier = _verifier(deployment, tmp_path, [alg], [_public(key, alg=alg)])
    assert verifier.verify(_token(key, alg)).client == "order-sync"


def test_the_issuers_list_decides_even_for_the_same_rsa_key(
    deployment: Deployment, tmp_path: Path
) -> None:
    """A key published without ``alg``: RS256 listed, PS256 refused; and the other way round."""
    key = RSAKey.generate_key(2048, private=True)
    key.ensure_kid()
    rs256_only = _verifier(deployment, tmp_path, ["RS256"], [_public(key)])
    assert rs256_only.verify(_token(key, "RS256")).client == "order-sync"
    _refused(rs256_only, _token(key, "PS256"), "not allowed")
    ps256_only = _verifier(deployment, tmp_path, ["PS256"], [_public(key)])
    assert ps256_only.verify(_token(key, "PS256")).client == "order-sync"
    _refused(ps256_only, _token(key, "RS256"), "not allowed")


def _refused(verifier: AccessTokenVerifier, token: str, reason: str) -> None:
    with pytest.raises(InvalidTokenError) as caught:
        verifier.verify(token)
    assert reason in caught.value.reason


def test_an_es384_token_under_a_p256_key_is_refused(deployment: Deployment, tmp_path: Path) -> None:
    """RFC 7518 §3.4: ES384 is P-384; an issuer allowing both cannot be crossed over curves."""
    key = ECKey.generate_key("P-256", private=True)
    key.ensure_kid()
    verifier = _verifier(deployment, tmp_path, ["ES256", "ES384"], [_public(key)])
    assert verifier.verify(_token(key, "ES256")).client == "order-sync"
    # ECDSA with SHA-384 on the P-256 key: what joserfc's serializer itself would refuse.
    head, payload, _ = _token(key, "ES256").split(".")
    header = json.loads(base64.urlsafe_b64decode(head + "=="))
    head = _b64(json.dumps({**header, "alg": "ES384"}).encode())
    signature = jws.JWSRegistry.algorithms["ES384"].sign(f"{head}.{payload}".encode(), key)
    with pytest.raises(InvalidTokenError):
        verifier.verify(f"{head}.{payload}.{_b64(signature)}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_rsa_keys_under_2048_bits_are_never_used(deployment: Deployment, tmp_path: Path) -> None:
    """A 1024-bit RSA key in an issuer's key set verifies nothing (NIST SP 800-131A)."""
    with pytest.warns(SecurityWarning, match="2048"):
        weak = RSAKey.generate_key(1024, private=True)
    weak.ensure_kid()
    verifier = _verifier(deployment, tmp_path, ["RS256"], [_public(weak)])
    with pytest.raises(InvalidTokenError):
        verifier.verify(_token(weak, "RS256"))


@pytest.mark.parametrize("alg", ["RS384", "PS512", "ES512", "EdDSA"])
def test_algorithms_outside_the_list_are_a_manifest_error(tmp_path: Path, alg: str) -> None:
    """The manifest names the accepted algorithms; anything else is refused on load."""
    path = tmp_path / "interlock.yaml"
    path.write_text(
        MANIFEST.format(issuer=EXTERNAL, jwks=tmp_path / "j.json", algorithms=f"[{alg}]")
    )
    with pytest.raises(ConfigError):
        load_manifest(path)
