"""The token attack suite through the real gateway: every forgery is a 401 that reveals nothing.

Each case is a request with ``Authorization: Bearer <token>`` on a route the
honest token opens; the refusal must be 401, a problem document, and the same
words for every case (the reason goes to the log only).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from joserfc.jws import JWSRegistry

from interlock.crypto.jose import generate_signing_key, public_jwk, sign_compact
from interlock.oauth.revoked import RevokedTokens
from interlock.oauth.signing_keys import SigningKeys
from interlock.testing.gateway import Env

Forge = Callable[["Kit"], str]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Kit:
    """What an attack is built from: the issuer's real key and honest claims."""

    def __init__(self, env: Env) -> None:
        keys = SigningKeys(env.deployment.engine, env.deployment.keyring, "ES256")
        self.signer = keys.signer()
        self.issuer = f"https://127.0.0.1:{env.port}"
        self.env = env

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": "oauth-only",
            "aud": self.issuer,
            "client_id": "oauth-only",
            "scope": "orders.read",
            "iat": now,
            "exp": now + 300,
            "jti": f"attack-{time.monotonic_ns()}",
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        """Signed with the issuer's real key (so only the attacked check can refuse it)."""
        header = {"typ": "at+jwt", **header}
        header = {k: v for k, v in header.items() if v is not None}
        return sign_compact(json.dumps(claims).encode(), self.signer.key, self.signer.alg, header)

    def sign_raw(self, header: dict[str, Any], claims: dict[str, Any]) -> str:
        """Signed with the issuer's key over a header joserfc itself would not produce."""
        head, body = _b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode())
        algorithm = JWSRegistry.algorithms[self.signer.alg]
        return f"{head}.{body}.{_b64(algorithm.sign(f'{head}.{body}'.encode(), self.signer.key))}"

    def raw(self, header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
        return ".".join(
            [_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), _b64(signature)]
        )


class Listener:
    """A TCP listener that counts connections: proof that nothing was fetched."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.hits += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    """Where jku/x5u point."""
    running = Listener()
    yield running
    running.close()


@pytest.fixture
def kit(env: Env) -> Kit:
    """The issuer's key and honest claims for this gateway."""
    return Kit(env)


def _attacker_with_embedded_jwk(kit: Kit) -> str:
    attacker = generate_signing_key("ES256")
    header = {"typ": "at+jwt", "jwk": public_jwk(attacker, "ES256")}
    return sign_compact(json.dumps(kit.claims()).encode(), attacker, "ES256", header)


def _hs256_with_public_key(kit: Kit) -> str:
    secret = json.dumps(public_jwk(kit.signer.key, "ES256")).encode()
    header = {"alg": "HS256", "typ": "at+jwt", "kid": kit.signer.kid}
    head, body = _b64(json.dumps(header).encode()), _b64(json.dumps(kit.claims()).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


def _tampered(kit: Kit) -> str:
    head, _, signature = kit.sign(kit.claims()).split(".")
    widened = _b64(json.dumps(kit.claims(scope="orders.read orders.write")).encode())
    return f"{head}.{widened}.{signature}"


def _jku(kit: Kit, listener: Listener, name: str) -> str:
    attacker = generate_signing_key("ES256")
    header = {"typ": "at+jwt", name: f"http://127.0.0.1:{listener.port}/keys"}
    return sign_compact(json.dumps(kit.claims()).encode(), attacker, "ES256", header)


ATTACKS: dict[str, Forge] = {
    "alg none": lambda k: k.raw({"alg": "none", "typ": "at+jwt", "kid": k.signer.kid}, k.claims()),
    "unknown crit": lambda k: k.sign_raw(
        {"alg": "ES256", "typ": "at+jwt", "kid": k.signer.kid, "crit": ["urn:x"], "urn:x": 1},
        k.claims(),
    ),
    "embedded jwk": _attacker_with_embedded_jwk,
    "HS256 keyed with the public key": _hs256_with_public_key,
    "unknown kid": lambda k: k.raw(
        {"alg": "ES256", "typ": "at+jwt", "kid": "nope"}, k.claims(), b"x" * 64
    ),
    "path-like kid": lambda k: k.raw(
        {"alg": "ES256", "typ": "at+jwt", "kid": "../../etc/passwd"}, k.claims(), b"x" * 64
    ),
    "SQL-like kid": lambda k: k.raw(
        {"alg": "ES256", "typ": "at+jwt", "kid": "' OR '1'='1"}, k.claims(), b"x" * 64
    ),
    "missing typ": lambda k: k.sign(k.claims(), typ=None),
    "wrong typ": lambda k: k.sign(k.claims(), typ="JWT"),
    "wrong aud": lambda k: k.sign(k.claims(aud="https://elsewhere.example")),
    "wrong iss": lambda k: k.sign(k.claims(iss="https://evil.example")),
    "expired": lambda k: k.sign(k.claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)),
    "nbf in the future": lambda k: k.sign(k.claims(nbf=int(time.time()) + 3600)),
    "iat in the future": lambda k: k.sign(k.claims(iat=int(time.time()) + 3600)),
    "sub differs from client_id": lambda k: k.sign(k.claims(sub="someone-else")),
    "unknown client": lambda k: k.sign(k.claims(sub="ghost", client_id="ghost")),
    "unsupported cnf": lambda k: k.sign(k.claims(cnf={"x5t": "abc"})),
    "tampered payload": _tampered,
    "over the size cap": lambda k: k.sign(k.claims(pad="x" * 8500)),
}


def _assert_opaque_401(env: Env, token: str) -> None:
    status, headers, body = env.request("GET", "/orders/1001", {"Authorization": f"Bearer {token}"})
    assert status == 401, body
    assert headers["content-type"].startswith("application/problem+json")
    assert headers["www-authenticate"].startswith("Bearer")
    assert set(body) == {"type", "title", "status", "detail", "instance", "correlation_id"}
    assert body["detail"] in {"the access token is invalid", "the credential is malformed"}


def test_the_honest_token_opens_the_route(env: Env, kit: Kit) -> None:
    """The control: the same construction without an attack is accepted."""
    token = kit.sign(kit.claims())
    status, _, body = env.request("GET", "/orders/1001", {"Authorization": f"Bearer {token}"})
    assert status == 200, body


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attack_is_refused(env: Env, kit: Kit, attack: str) -> None:
    """Each forgery: 401, problem document, no hint of which check failed."""
    _assert_opaque_401(env, ATTACKS[attack](kit))


@pytest.mark.parametrize("header", ["jku", "x5u"])
def test_key_urls_are_never_fetched(env: Env, kit: Kit, listener: Listener, header: str) -> None:
    """jku / x5u pointing elsewhere: refused, and nothing connects there."""
    before = listener.hits
    _assert_opaque_401(env, _jku(kit, listener, header))
    time.sleep(0.3)
    assert listener.hits == before


def test_revoked_jti_is_refused_even_after_a_cached_success(env: Env, kit: Kit) -> None:
    """A token that was accepted (and cached) is refused once its jti is revoked."""
    claims = kit.claims()
    token = kit.sign(claims)
    assert env.request("GET", "/orders/1001", {"Authorization": f"Bearer {token}"})[0] == 200
    RevokedTokens(env.deployment.engine).add(
        claims["jti"], "oauth-only", kit.claims()["exp"] and _at(claims["exp"])
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status = env.request("GET", "/orders/1001", {"Authorization": f"Bearer {token}"})[0]
        if status == 401:
            break
        time.sleep(0.2)
    _assert_opaque_401(env, token)


def _at(timestamp: int) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC)


def test_a_certificate_bound_token_without_its_certificate_is_refused(env: Env, kit: Kit) -> None:
    """RFC 8705 §3: cnf.x5t#S256 and no client certificate on the connection: 401."""
    token = kit.sign(kit.claims(cnf={"x5t#S256": "q1zp2pM9lT6lQFqg7Oyc0rTj5Oo0J3kRbmoRj0t0xAo"}))
    status, _, body = env.request("GET", "/orders/1001", {"Authorization": f"Bearer {token}"})
    assert status == 401
    assert "bound to a client certificate" in body["detail"]
