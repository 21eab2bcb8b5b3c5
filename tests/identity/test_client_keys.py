"""Registered client keys (private_key_jwt): an allow-list of public keys, one owner each."""

from __future__ import annotations

import json
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.crypto.jose import sign_compact
from interlock.errors import InvalidRequestError, NotFoundError
from interlock.identity.client_keys import MAX_ACTIVE, ClientKeys
from interlock.identity.public_keys import jwk_from_pem
from interlock.oauth.client_assertion import ClientAssertions
from interlock.replay.seen import MemorySeen
from interlock.store import Deployment
from interlock.testing.clock import ManualClock

MANIFEST = """\
version: 1
systems:
  erp: {{url: "https://erp.internal", location: DE}}
roles:
  reader: {{scopes: [orders.read]}}
clients:
  app: {{auth: [{app_auth}], roles: [reader]}}
  other: {{auth: [oauth2], roles: [reader]}}
  legacy: {{auth: [api_key], roles: [reader]}}
integrations:
  f:
    source: erp
    target: erp
    client: legacy
    purpose: test
    legal_basis: contract
    retention: 1d
    routes:
      - {{method: GET, path: "/a", upstream: erp, scope: orders.read}}
"""
AUDIENCE = "https://gw.example"  # the issuer: an assertion's sole audience
RSA_2048 = RSAKey.generate_key(2048, private=True)  # generated once: RSA key generation is slow


def _rsa_1024() -> dict[str, Any]:
    with warnings.catch_warnings():  # joserfc warns about the small key; we refuse it
        warnings.simplefilter("ignore", SecurityWarning)
        return dict(RSAKey.generate_key(1024, private=False).as_dict())


def _manifest(tmp_path: Path, app_auth: str = "oauth2") -> Manifest:
    path = tmp_path / f"manifest-{app_auth.replace(', ', '-')}.yaml"
    path.write_text(MANIFEST.format(app_auth=app_auth))
    return load_manifest(path)


@pytest.fixture
def keys(deployment: Deployment, tmp_path: Path, clock: ManualClock) -> ClientKeys:
    """The client key registry on each store backend, with a hand-moved clock."""
    return ClientKeys(deployment.engine, deployment.keyring, _manifest(tmp_path), now=clock)


def _ec() -> ECKey:
    return ECKey.generate_key("P-256", private=True)


def _public(key: ECKey | OKPKey | RSAKey, **extra: Any) -> dict[str, Any]:
    return {**key.as_dict(private=False), **extra}


@pytest.mark.parametrize(
    ("private", "alg"),
    [
        (ECKey.generate_key("P-256", private=True), "ES256"),
        (OKPKey.generate_key("Ed25519", private=True), "Ed25519"),
        (RSA_2048, "RS256"),
    ],
    ids=["P-256", "Ed25519", "RSA-2048"],
)
def test_register_returns_the_thumbprint_and_the_key_verifies_assertions(
    keys: ClientKeys, clock: ManualClock, private: ECKey | OKPKey | RSAKey, alg: str
) -> None:
    """kid = RFC 7638 thumbprint; alg defaults by key type; the token endpoint's check passes."""
    kid = keys.register("app", _public(private), use="assertion")
    assert kid == private.thumbprint()
    registered = keys.public_keys("app")
    assert list(registered) == [kid]
    assert registered[kid][0] == alg
    assertions = ClientAssertions(keys, MemorySeen(), AUDIENCE, clock=lambda: clock().timestamp())
    now = int(clock().timestamp())
    claims = {"iss": "app", "sub": "app", "aud": AUDIENCE, "exp": now + 60, "jti": "j1"}
    assertion = sign_compact(json.dumps(claims).encode(), private, alg)
    assert assertions.authenticate("app", assertion) == "app"


def test_only_public_members_alg_use_and_kid_are_stored(
    keys: ClientKeys, deployment: Deployment
) -> None:
    """Extra members (a caller-chosen kid, x5u) are dropped; the stored kid is the thumbprint."""
    key = _ec()
    document = _public(key, kid="chosen-by-caller", x5u="https://evil.example/cert")
    kid = keys.register("app", document, use="assertion")
    with deployment.engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT public_jwk FROM identity_client_keys")).scalar()
    assert json.loads(str(stored)) == {
        **key.as_dict(private=False),
        "alg": "ES256",
        "use": "sig",
        "kid": kid,
    }


def test_unknown_client_and_clients_without_oauth2_are_refused(keys: ClientKeys) -> None:
    """Keys exist only for manifest clients whose auth includes oauth2."""
    with pytest.raises(NotFoundError):
        keys.register("ghost", _public(_ec()), use="assertion")
    with pytest.raises(InvalidRequestError, match="may not use OAuth"):
        keys.register("legacy", _public(_ec()), use="assertion")


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "k"])
def test_private_or_symmetric_members_are_refused(keys: ClientKeys, member: str) -> None:
    """A JWK carrying any private (RFC 7518 §6.2.2, §6.3.2) or symmetric member is refused."""
    with pytest.raises(InvalidRequestError, match=f"private or symmetric members \\({member}\\)"):
        keys.register("app", _public(_ec(), **{member: "AAAA"}), use="assertion")
    assert keys.list_keys() == []


def test_a_full_private_jwk_is_refused(keys: ClientKeys) -> None:
    """The real thing: a private key handed over by mistake is not registered."""
    with pytest.raises(InvalidRequestError, match="register the public key only"):
        keys.register("app", _ec().as_dict(private=True), use="assertion")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"kty": "oct"}, "key type 'oct'"),
        ({"x": "AAAA"}, "key type None"),
        (ECKey.generate_key("P-384", private=False).as_dict(), "curve P-384"),
        (ECKey.generate_key("secp256k1", private=False).as_dict(), "curve secp256k1"),
        (OKPKey.generate_key("X25519", private=False).as_dict(), "curve X25519"),
        (_rsa_1024(), "shorter than 2048"),
    ],
    ids=["oct", "no-kty", "P-384", "secp256k1", "X25519", "RSA-1024"],
)
def test_key_types_and_curves_outside_the_allow_list_are_refused(
    keys: ClientKeys, document: dict[str, Any], message: str
) -> None:
    """Only EC P-256, OKP Ed25519 and RSA of at least 2048 bits."""
    with pytest.raises(InvalidRequestError, match=message):
        keys.register("app", document, use="assertion")


@pytest.mark.parametrize(
    ("private", "alg"),
    [
        (ECKey.generate_key("P-256", private=True), "RS256"),  # alg of another key type
        (ECKey.generate_key("P-256", private=True), "ES384"),  # not on the allow-list
        (ECKey.generate_key("P-256", private=True), "HS256"),  # RFC 8725 §2.1
        (ECKey.generate_key("P-256", private=True), "none"),
        (OKPKey.generate_key("Ed25519", private=True), "EdDSA"),  # deprecated by RFC 9864
        (RSA_2048, "PS256"),
        (RSA_2048, "ES256"),
    ],
)
def test_an_alg_that_does_not_fit_the_key_or_the_allow_list_is_refused(
    keys: ClientKeys, private: ECKey | OKPKey | RSAKey, alg: str
) -> None:
    """The key fixes its algorithm; a declared alg must be exactly that one."""
    with pytest.raises(InvalidRequestError, match="does not fit this key"):
        keys.register("app", _public(private, alg=alg), use="assertion")


def test_a_matching_explicit_alg_is_accepted(keys: ClientKeys) -> None:
    """alg: ES256 on a P-256 key is the default said out loud."""
    kid = keys.register(
        "app", _public(_ec(), alg="ES256", use="sig", key_ops=["verify"]), use="assertion"
    )
    assert keys.public_keys("app")[kid][0] == "ES256"


@pytest.mark.parametrize("extra", [{"use": "enc"}, {"key_ops": ["encrypt"]}, {"key_ops": "x"}])
def test_keys_not_meant_for_signatures_are_refused(keys: ClientKeys, extra: dict[str, Any]) -> None:
    """use / key_ops, when present, must allow signature verification."""
    with pytest.raises(InvalidRequestError, match="not meant for signatures"):
        keys.register("app", _public(_ec(), **extra), use="assertion")


def test_a_key_belongs_to_one_client_and_never_comes_back_after_revocation(
    keys: ClientKeys,
) -> None:
    """The same key cannot be registered twice, for any client, even after revocation."""
    document = _public(_ec())
    kid = keys.register("app", document, use="assertion")
    for client in ("app", "other"):
        with pytest.raises(InvalidRequestError, match="already registered"):
            keys.register(client, document, use="assertion")
    keys.revoke(kid, "assertion")
    with pytest.raises(InvalidRequestError, match="generate a new key pair"):
        keys.register("other", document, use="assertion")


def test_at_most_five_active_keys_per_client(keys: ClientKeys, clock: ManualClock) -> None:
    """A sixth active key is refused; revoked and expired ones do not count."""
    kids = [keys.register("app", _public(_ec()), use="assertion") for _ in range(MAX_ACTIVE - 1)]
    keys.register("app", _public(_ec()), expires_at=clock() + timedelta(hours=1), use="assertion")
    with pytest.raises(InvalidRequestError, match="already has 5 active keys"):
        keys.register("app", _public(_ec()), use="assertion")
    keys.register("other", _public(_ec()), use="assertion")  # the limit is per client
    keys.revoke(kids[0], "assertion")
    keys.register("app", _public(_ec()), use="assertion")
    clock.now += timedelta(hours=1)
    keys.register("app", _public(_ec()), use="assertion")
    assert len(keys.public_keys("app")) == MAX_ACTIVE


def test_an_expiry_in_the_past_or_without_a_zone_is_refused(
    keys: ClientKeys, clock: ManualClock
) -> None:
    """expires_at must be an aware datetime after now."""
    with pytest.raises(InvalidRequestError, match="in the future"):
        keys.register("app", _public(_ec()), expires_at=clock(), use="assertion")
    with pytest.raises(InvalidRequestError, match="in the future"):
        keys.register(
            "app",
            _public(_ec()),
            expires_at=clock().replace(tzinfo=None) + timedelta(1),
            use="assertion",
        )


def test_public_keys_holds_active_keys_only(keys: ClientKeys, clock: ManualClock) -> None:
    """Revoked keys leave at once, expiring keys at their expiry; list_keys shows all."""
    lasting = keys.register("app", _public(_ec()), use="assertion")
    expiring = keys.register(
        "app", _public(_ec()), expires_at=clock() + timedelta(minutes=5), use="assertion"
    )
    revoked = keys.register("app", _public(_ec()), use="assertion")
    keys.revoke(revoked, "assertion")
    assert set(keys.public_keys("app")) == {lasting, expiring}
    clock.now += timedelta(minutes=5)
    assert set(keys.public_keys("app")) == {lasting}
    listed = {info.kid: info for info in keys.list_keys("app")}
    assert {kid: info.active for kid, info in listed.items()} == {
        lasting: True,
        expiring: False,
        revoked: False,
    }
    assert listed[revoked].revoked_at is not None
    assert listed[expiring].expires_at == clock()
    assert listed[lasting].expires_at is None
    assert keys.public_keys("other") == {}


def test_list_keys_filters_by_client_newest_first(keys: ClientKeys, clock: ManualClock) -> None:
    """Typed records, newest first; a client filter."""
    first = keys.register("app", _public(_ec()), use="assertion")
    clock.now += timedelta(seconds=1)
    second = keys.register("app", _public(_ec()), use="assertion")
    theirs = keys.register("other", _public(_ec()), use="assertion")
    assert [info.kid for info in keys.list_keys("app")] == [second, first]
    assert {info.kid for info in keys.list_keys()} == {first, second, theirs}
    info = keys.list_keys("other")[0]
    assert (info.client, info.alg, info.created_at, info.active) == (
        "other",
        "ES256",
        clock(),
        True,
    )


def test_revoke_is_idempotent_and_unknown_kids_are_not_found(
    keys: ClientKeys, clock: ManualClock
) -> None:
    """The first revocation time stays; an unknown kid is NotFoundError."""
    kid = keys.register("app", _public(_ec()), use="assertion")
    first = keys.revoke(kid, "assertion")
    clock.now += timedelta(hours=1)
    assert keys.revoke(kid, "assertion").revoked_at == first.revoked_at
    assert not first.active
    with pytest.raises(NotFoundError):
        keys.revoke("no-such-kid", "assertion")


def test_revoke_client_revokes_every_active_key_of_that_client_only(keys: ClientKeys) -> None:
    """Returns how many were active; the other client's keys stay."""
    keys.register("app", _public(_ec()), use="assertion")
    keys.register("app", _public(_ec()), use="assertion")
    theirs = keys.register("other", _public(_ec()), use="assertion")
    assert keys.revoke_client("app") == 2
    assert keys.revoke_client("app") == 0
    assert keys.public_keys("app") == {}
    assert list(keys.public_keys("other")) == [theirs]


def test_removing_oauth2_from_the_manifest_disables_the_keys_at_once(
    keys: ClientKeys, tmp_path: Path
) -> None:
    """public_keys consults the current manifest, as secret authentication does."""
    keys.register("app", _public(_ec()), use="assertion")
    keys.manifest = _manifest(tmp_path, app_auth="api_key")
    assert keys.public_keys("app") == {}


def test_public_keys_is_one_query(keys: ClientKeys, deployment: Deployment) -> None:
    """The token endpoint's lookup costs one statement, whatever the number of keys."""
    for _ in range(3):
        keys.register("app", _public(_ec()), use="assertion")
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    sa.event.listen(deployment.engine, "before_cursor_execute", count)
    try:
        assert len(keys.public_keys("app")) == 3
    finally:
        sa.event.remove(deployment.engine, "before_cursor_execute", count)
    assert len(statements) == 1
    assert "WHERE identity_client_keys.client = " in statements[0]


def test_a_pem_public_key_converts_to_the_same_jwk() -> None:
    """PEM (SubjectPublicKeyInfo) goes through joserfc; the thumbprint is unchanged."""
    for private in (_ec(), OKPKey.generate_key("Ed25519", private=True), RSA_2048):
        document = jwk_from_pem(private.as_pem(private=False))
        assert "d" not in document
        assert _thumbprint(document) == private.thumbprint()


def test_a_pem_private_key_or_garbage_is_refused() -> None:
    """The server never accepts a private key, not even to derive the public half."""
    with pytest.raises(InvalidRequestError, match="private key"):
        jwk_from_pem(_ec().as_pem(private=True))
    with pytest.raises(InvalidRequestError, match="not a PEM public key"):
        jwk_from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(InvalidRequestError, match="at most"):
        jwk_from_pem(b"-" * 100_000)


def _thumbprint(document: dict[str, Any]) -> str:
    from joserfc.jwk import JWKRegistry

    return JWKRegistry.import_key(document).thumbprint()
