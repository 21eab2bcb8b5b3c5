"""The access-token verifier: trusted external issuers, key rotation, the verified-token cache."""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from joserfc.jwk import RSAKey

from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.crypto.jose import generate_signing_key, public_jwk, sign_compact
from interlock.crypto.keyfile import write_private_file
from interlock.crypto.pkix import (
    certificate_pem,
    issue_server_certificate,
    private_key_pem,
    self_signed_ca,
)
from interlock.errors import InvalidTokenError
from interlock.gateway.tls import client_context
from interlock.oauth.revoked import RevokedTokens
from interlock.oauth.signing_keys import KeyTimings, SigningKeys
from interlock.oauth.tokens import AccessTokenVerifier, TokenIssuer
from interlock.oauth.trusted import trusted_policies
from interlock.store import Deployment
from interlock.testing.clock import ManualClock
from interlock.testing.services import REDIS
from tests.conftest import need

ISSUER = "https://gateway.test"
EXTERNAL = "https://idp.test/realms/acme"

MANIFEST = """\
version: 1
roles:
  reader: {scopes: [orders.read]}
  writer: {scopes: [orders.write]}
clients:
  order-sync: {auth: [oauth2], roles: [reader]}
  keys-only: {auth: [api_key], roles: [reader]}
"""


class Jwks:
    """An HTTPS JWKS endpoint with a certificate from a test CA; counts requests."""

    def __init__(self, tmp: Path, document: dict[str, Any]) -> None:
        ca, ca_key = self_signed_ca("Test IdP CA", timedelta(days=1))
        cert, key = issue_server_certificate(ca, ca_key, ["localhost"], timedelta(days=1))
        self.ca_file = tmp / "idp-ca.pem"
        self.ca_file.write_bytes(certificate_pem(ca))
        (tmp / "idp.pem").write_bytes(certificate_pem(cert))
        write_private_file(tmp / "idp.key", private_key_pem(key))
        self.document = document
        self.hits = 0
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                jwks.hits += 1
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "/certs")
                    self.end_headers()
                    return
                body = json.dumps(jwks.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tmp / "idp.pem", tmp / "idp.key")
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str = "/certs") -> str:
        return f"https://localhost:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def idp_key() -> RSAKey:
    """The external issuer's signing key (Keycloak signs RS256 by default)."""
    key = RSAKey.generate_key(2048, private=True)
    key.ensure_kid()
    return key


@pytest.fixture
def jwks(tmp_path: Path, idp_key: RSAKey) -> Iterator[Jwks]:
    """The external issuer's JWKS endpoint."""
    server = Jwks(tmp_path, {"keys": [public_jwk(idp_key, "RS256")]})
    yield server
    server.close()


def _manifest(tmp_path: Path, trusted: str = "") -> Manifest:
    path = tmp_path / "interlock.yaml"
    path.write_text(MANIFEST + trusted)
    return load_manifest(path)


def _trusted_yaml(source: str, ca: str = "") -> str:
    return f"""\
trusted_issuers:
  keycloak:
    issuer: {EXTERNAL}
    {source}
    {ca}
    audiences: [interlock-gateway]
    algorithms: [RS256]
    token_types: [at+jwt, JWT]
    client_claim: azp
    clients: {{kc-order-sync: order-sync}}
"""


def _verifier(
    deployment: Deployment, manifest: Manifest, ca_file: Path | None = None, **kwargs: Any
) -> AccessTokenVerifier:
    keys = SigningKeys(deployment.engine, deployment.keyring, "ES256")
    keys.ensure()
    verifier = AccessTokenVerifier(keys, ISSUER, manifest, **kwargs)
    verifier.trusted = trusted_policies(manifest, lambda _ca: client_context(ca_file))
    return verifier


def _external(key: RSAKey, typ: Any = "JWT", **changes: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": EXTERNAL,
        "sub": "f3a1-service-account-uuid",
        "azp": "kc-order-sync",
        "aud": ["interlock-gateway", "account"],
        "scope": "orders.read orders.write profile",
        "iat": now,
        "exp": now + 300,
        "jti": "kc-1",
    }
    claims.update(changes)
    return sign_compact(json.dumps(claims).encode(), key, "RS256", {"typ": typ})


def test_external_token_maps_to_a_manifest_client_with_its_grants_only(
    deployment: Deployment, tmp_path: Path, idp_key: RSAKey, jwks: Jwks
) -> None:
    """Keys over verified TLS; scopes are cut to what the mapped client's roles grant."""
    manifest = _manifest(tmp_path, _trusted_yaml(f"jwks_uri: {jwks.url()}", "ca: file:x"))
    verifier = _verifier(deployment, manifest, jwks.ca_file)
    principal = verifier.verify(_external(idp_key))
    assert principal.client == "order-sync"
    assert principal.scopes == frozenset({"orders.read"})
    assert EXTERNAL in principal.credential


@pytest.mark.parametrize(
    ("change", "typ"),
    [
        ({"aud": "someone-else"}, "JWT"),
        ({"azp": "kc-unknown"}, "JWT"),
        ({"azp": "order-sync"}, "JWT"),  # a manifest name is not an external client id
        ({"iss": "https://idp.test/realms/other"}, "JWT"),
        ({"exp": int(time.time()) - 3600}, "JWT"),
        ({"iat": str(int(time.time()))}, "JWT"),
        ({"nbf": int(time.time()) + 3600}, "JWT"),
        ({"aud": [1, {"interlock-gateway": 1}]}, "JWT"),
        ({"aud": {"interlock-gateway": 1}}, "JWT"),
        ({}, "dpop+jwt"),
        ({}, ["JWT"]),  # a typ that is not a string: refused, never a TypeError
    ],
)
def test_external_tokens_are_held_to_the_policy(  # noqa: PLR0917  (fixtures and parameters)
    deployment: Deployment,
    tmp_path: Path,
    idp_key: RSAKey,
    jwks: Jwks,
    change: dict[str, Any],
    typ: Any,
) -> None:
    """Audience, client mapping, issuer, times and typ are all enforced."""
    manifest = _manifest(tmp_path, _trusted_yaml(f"jwks_uri: {jwks.url()}", "ca: file:x"))
    verifier = _verifier(deployment, manifest, jwks.ca_file)
    with pytest.raises(InvalidTokenError):
        verifier.verify(_external(idp_key, typ, **change))


def test_an_algorithm_outside_the_issuers_list_is_refused(
    deployment: Deployment, tmp_path: Path, jwks: Jwks
) -> None:
    """The issuer allows RS256 only: an ES256 token under a published EC key is refused."""
    ec_key = generate_signing_key("ES256")
    jwks.document = {"keys": [public_jwk(ec_key, "ES256")]}
    manifest = _manifest(tmp_path, _trusted_yaml(f"jwks_uri: {jwks.url()}", "ca: file:x"))
    verifier = _verifier(deployment, manifest, jwks.ca_file)
    now = int(time.time())
    claims = {
        "iss": EXTERNAL,
        "azp": "kc-order-sync",
        "aud": "interlock-gateway",
        "iat": now,
        "exp": now + 60,
    }
    token = sign_compact(json.dumps(claims).encode(), ec_key, "ES256", {"typ": "JWT"})
    with pytest.raises(InvalidTokenError) as caught:
        verifier.verify(token)
    assert "not allowed" in caught.value.reason


def test_jwks_from_a_file(deployment: Deployment, tmp_path: Path, idp_key: RSAKey) -> None:
    """jwks_file: the keys come from disk."""
    path = tmp_path / "idp-jwks.json"
    path.write_text(json.dumps({"keys": [public_jwk(idp_key, "RS256")]}))
    manifest = _manifest(tmp_path, _trusted_yaml(f"jwks_file: {path}"))
    assert _verifier(deployment, manifest).verify(_external(idp_key)).client == "order-sync"


def test_untrusted_jwks_certificate_means_no_keys(
    deployment: Deployment, tmp_path: Path, idp_key: RSAKey, jwks: Jwks
) -> None:
    """The JWKS endpoint's certificate must chain to the configured CA."""
    manifest = _manifest(tmp_path, _trusted_yaml(f"jwks_uri: {jwks.url()}", "ca: system"))
    verifier = _verifier(deployment, manifest, None)  # system trust: the test CA is unknown
    with pytest.raises(InvalidTokenError):
        verifier.verify(_external(idp_key))


def test_redirects_are_not_followed(
    deployment: Deployment, tmp_path: Path, idp_key: RSAKey, jwks: Jwks
) -> None:
    """A JWKS endpoint that redirects yields no keys."""
    manifest = _manifest(
        tmp_path, _trusted_yaml(f"jwks_uri: {jwks.url('/redirect')}", "ca: file:x")
    )
    with pytest.raises(InvalidTokenError):
        _verifier(deployment, manifest, jwks.ca_file).verify(_external(idp_key))
    assert jwks.hits == 1


def test_unknown_kids_refresh_the_key_set_at_most_once_per_interval(
    deployment: Deployment, tmp_path: Path, idp_key: RSAKey, jwks: Jwks
) -> None:
    """A new key is found after one refresh; a flood of made-up kids costs no more fetches."""
    manifest = _manifest(tmp_path, _trusted_yaml(f"jwks_uri: {jwks.url()}", "ca: file:x"))
    verifier = _verifier(deployment, manifest, jwks.ca_file)
    verifier.verify(_external(idp_key))
    assert jwks.hits == 1
    rotated = RSAKey.generate_key(2048, private=True)
    rotated.ensure_kid()
    jwks.document = {"keys": [public_jwk(idp_key, "RS256"), public_jwk(rotated, "RS256")]}
    for index in range(50):
        forged = _external(idp_key).split(".")
        header = {"alg": "RS256", "typ": "JWT", "kid": f"made-up-{index}"}
        forged[0] = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
        with pytest.raises(InvalidTokenError):
            verifier.verify(".".join(forged))
    assert jwks.hits == 1  # the interval since the first load has not passed: no more fetches
    # Once the interval has passed, a token under the new key is accepted.
    for policy in verifier.trusted:
        policy.keys._attempted -= 60  # as if the interval had elapsed
    rotated_token = _external(rotated)
    assert verifier.verify(rotated_token).client == "order-sync"
    assert jwks.hits == 2


def test_manifest_rejects_hmac_and_unmapped_issuers(tmp_path: Path) -> None:
    """HS256 and clients that do not exist are configuration errors."""
    from interlock.errors import ManifestError

    bad = _trusted_yaml("jwks_file: /dev/null").replace("[RS256]", "[RS256, HS256]")
    with pytest.raises(ManifestError, match="HS256 is refused"):
        _manifest(tmp_path, bad)
    unknown = _trusted_yaml("jwks_file: /dev/null").replace("kc-order-sync: order-sync", "x: ghost")
    with pytest.raises(ManifestError, match="unknown client 'ghost'"):
        _manifest(tmp_path, unknown)
    api_only = _trusted_yaml("jwks_file: /dev/null").replace(": order-sync}", ": keys-only}")
    with pytest.raises(ManifestError, match="does not list oauth2"):
        _manifest(tmp_path, api_only)


def test_a_key_rotated_out_after_its_grace_no_longer_verifies(
    deployment: Deployment, clock: ManualClock
) -> None:
    """Rotation: old tokens verify during the grace, not after the old key retires."""
    timings = KeyTimings(publish_ahead=timedelta(0), max_token_lifetime=timedelta(minutes=10))
    keys = SigningKeys(deployment.engine, deployment.keyring, "ES256", timings=timings, now=clock)
    keys.ensure()
    manifest_text = MANIFEST
    path = Path(deployment.settings.data_dir) / "m.yaml"
    path.write_text(manifest_text)
    manifest = load_manifest(path)
    issuer = TokenIssuer(keys, ISSUER, now=clock)
    old = issuer.issue("order-sync", frozenset({"orders.read"}), ISSUER).access_token
    keys.rotate()
    fresh = AccessTokenVerifier(keys, ISSUER, manifest, now=clock, refresh_seconds=0)
    assert fresh.verify(old).client == "order-sync"
    clock.now += timedelta(hours=2)
    keys.ensure()  # retires and deletes the old key
    later = AccessTokenVerifier(keys, ISSUER, manifest, now=clock, refresh_seconds=0)
    with pytest.raises(InvalidTokenError) as caught:
        later.verify(old)
    assert caught.value.reason == "unknown kid"  # the signature check comes before expiry


def test_cache_hits_skip_the_work_but_honour_expiry_and_revocation(
    deployment: Deployment, tmp_path: Path
) -> None:
    """A repeated token is answered from the cache until it expires or is revoked."""
    manifest = _manifest(tmp_path)
    keys = SigningKeys(deployment.engine, deployment.keyring, "ES256")
    keys.ensure()
    now = [datetime.now(UTC)]
    revoked = RevokedTokens(deployment.engine)
    verifier = AccessTokenVerifier(keys, ISSUER, manifest, now=lambda: now[0], revoked=revoked)
    issued = TokenIssuer(keys, ISSUER, timedelta(minutes=5), now=lambda: now[0])
    token = issued.issue("order-sync", frozenset({"orders.read"}), ISSUER).access_token
    assert verifier.verify_cached(token) is None
    principal = verifier.verify(token)
    assert verifier.verify_cached(token) == principal
    claims = verifier.claims(token)
    revoked.add(claims["jti"], "order-sync", datetime.now(UTC) + timedelta(minutes=5))
    assert verifier.verify_cached(token) is None
    with pytest.raises(InvalidTokenError):
        verifier.verify(token)
    other = issued.issue("order-sync", frozenset({"orders.read"}), ISSUER).access_token
    verifier.verify(other)
    now[0] += timedelta(minutes=6)
    assert verifier.verify_cached(other) is None


def test_cache_is_bounded_and_cleared_on_manifest_change(
    deployment: Deployment, tmp_path: Path
) -> None:
    """At most cache_size entries; a new manifest (new grants) empties it."""
    manifest = _manifest(tmp_path)
    keys = SigningKeys(deployment.engine, deployment.keyring, "ES256")
    keys.ensure()
    verifier = AccessTokenVerifier(keys, ISSUER, manifest, cache_size=3)
    issuer = TokenIssuer(keys, ISSUER)
    tokens = [
        issuer.issue("order-sync", frozenset({"orders.read"}), ISSUER).access_token
        for _ in range(5)
    ]
    for token in tokens:
        verifier.verify(token)
    assert [verifier.verify_cached(t) is not None for t in tokens] == [
        False,
        False,
        True,
        True,
        True,
    ]
    verifier.manifest = manifest
    assert verifier.verify_cached(tokens[-1]) is None


@pytest.mark.redis
def test_redis_announces_revocations_to_every_replica_at_once(deployment: Deployment) -> None:
    """With Redis, a revocation on one replica reaches another before its store reload."""
    client = redis.Redis.from_url(need(REDIS))
    here = RevokedTokens(deployment.engine, sync_seconds=3600, redis_client=client)
    there = RevokedTokens(deployment.engine, sync_seconds=3600, redis_client=client)
    try:
        there.reload()
        assert there.known("announced") is False
        time.sleep(0.2)  # let both subscriptions settle
        here.add("announced", "order-sync", datetime.now(UTC) + timedelta(minutes=5))
        deadline = time.monotonic() + 5
        while there.known("announced") is not True and time.monotonic() < deadline:
            time.sleep(0.02)
        assert there.known("announced") is True
    finally:
        here.close()
        there.close()
        client.close()
