"""The gateway's names (issue 17 item 7): Host must be one of them; proofs name the public URL.

DPoP ``htu`` and RFC 9421 ``@target-uri`` used to be checked against a URL
built from the caller's ``Host`` header, so a proof or signature made for
``https://evil.example/...`` was accepted when sent with ``Host:
evil.example``: a credential captured at another server replayed here. Now a
request whose Host is not one of the gateway's names is refused (421), and
both are compared with the configured public URL (the issuer).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from joserfc.jwk import ECKey

from interlock.testing.gateway import Env, Signer, running_gateway
from tests.gateway.test_dpop import FORM, bound_token, proof

EVIL = "evil.example"


def _misdirected(answer: tuple[int, dict[str, str], object]) -> None:
    status, headers, body = answer
    assert status == 421, body
    assert headers["content-type"].startswith("application/problem+json")
    assert isinstance(body, dict)
    assert body["type"] == "urn:interlock:problem:misdirected-request"


def test_a_dpop_proof_for_another_host_is_refused_even_with_that_host(
    env: Env, secret: str
) -> None:
    """A proof made for evil.example, sent with Host: evil.example: refused (it was a 200)."""
    key = ECKey.generate_key("P-256", private=True)
    token = bound_token(env, secret, key)
    forged = proof(key, "GET", f"https://{EVIL}:{env.port}/orders/1001", token=token)
    headers = {"Host": f"{EVIL}:{env.port}", "Authorization": f"DPoP {token}", "DPoP": forged}
    _misdirected(env.request("GET", "/orders/1001", headers))


def test_a_token_endpoint_proof_for_another_host_is_refused(env: Env, secret: str) -> None:
    """At the token endpoint too: no token is bound through a proof for another server."""
    key = ECKey.generate_key("P-256", private=True)
    forged = proof(key, "POST", f"https://{EVIL}:{env.port}/oauth2/token")
    headers = {**FORM, **Env.basic(secret), "Host": f"{EVIL}:{env.port}", "DPoP": forged}
    body = urlencode({"grant_type": "client_credentials"}).encode()
    _misdirected(env.request("POST", "/oauth2/token", headers, body))


def test_a_signature_for_another_host_is_refused_even_with_that_host(env: Env) -> None:
    """RFC 9421 @target-uri for evil.example with Host: evil.example: refused (was forwarded)."""
    token, _ = env.key()
    signer = Signer(env)
    try:
        path, body = "/signed/orders/1001", b'{"order": 1001}'
        signed = signer.headers("POST", path, body, base=f"https://{EVIL}:{env.port}")
        headers = {"X-API-Key": token, "Host": f"{EVIL}:{env.port}", **signed}
        _misdirected(env.request("POST", path, headers, body))
    finally:
        signer.revoke()


@pytest.mark.parametrize("host", [EVIL, "127.0.0.1.evil.example", "attacker.test:443"])
def test_a_request_for_a_name_that_is_not_ours_is_refused(env: Env, host: str) -> None:
    """Whatever the credential: a Host the gateway does not answer for is a 421."""
    token, _ = env.key()
    _misdirected(env.request("GET", "/orders/1001", {"Host": host, "X-API-Key": token}))


@pytest.mark.parametrize("host", ["127.0.0.1", "LOCALHOST", "localhost:1"])
def test_the_listeners_names_are_ours_whatever_the_port_or_case(env: Env, host: str) -> None:
    """The listener's address and localhost (its certificate's names) are the gateway's."""
    token, _ = env.key()
    assert env.request("GET", "/orders/1001", {"Host": host, "X-API-Key": token})[0] == 200


def test_health_answers_whatever_the_host(env: Env) -> None:
    """Load-balancer and orchestrator probes name the address they dialled: /healthz answers."""
    assert env.request("GET", "/healthz", {"Host": "10.1.2.3:8443"})[0] == 200


@pytest.fixture(scope="module")
def public(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A gateway whose public URL (the issuer) is https://gateway.test."""
    with running_gateway(
        tmp_path_factory.mktemp("public"), public_url="https://gateway.test"
    ) as env:
        yield env


@pytest.mark.processes
def test_proofs_name_the_public_url_not_the_host_header(public: Env) -> None:
    """Behind a load balancer the proof names the public URL, whatever Host the replica sees."""
    key = ECKey.generate_key("P-256", private=True)
    with public.client_secret() as secret:
        token_proof = proof(key, "POST", "https://gateway.test/oauth2/token")
        status, _, body = public.request(
            "POST",
            "/oauth2/token",
            {**FORM, **Env.basic(secret), "DPoP": token_proof},
            urlencode({"grant_type": "client_credentials"}).encode(),
        )
        assert status == 200, body
        token = str(body["access_token"])
        public.issued_tokens.append(token)

    def call(url: str) -> int:
        dpop = proof(key, "GET", url, token=token, jti=secrets.token_urlsafe(12))
        headers = {"Authorization": f"DPoP {token}", "DPoP": dpop}
        return public.request("GET", "/orders/1001", headers)[0]

    assert call("https://gateway.test/orders/1001") == 200
    # The address the request reached is not the URL clients were given: refused.
    assert call(f"https://127.0.0.1:{public.port}/orders/1001") == 401


def test_remembered_host_values_change_no_answer() -> None:
    """Host values answered before are answered again; others are still refused, however many."""
    from aiohttp.test_utils import make_mocked_request

    from interlock.errors import Refusal
    from interlock.gateway.hosts import GatewayNames

    names = GatewayNames("https://api.example.com", ["127.0.0.1", "localhost"])

    def answers(host: str) -> bool:
        try:
            names.check(make_mocked_request("GET", "/", headers={"Host": host}))
        except Refusal:
            return False
        return True

    for _ in range(2):
        assert answers("localhost:8443")
        assert answers("API.example.com")
        assert not answers(EVIL)
        assert not answers(f"{EVIL}:8443")
    assert all(answers(f"localhost:{port}") for port in range(1, 600))  # past the bound
    assert answers("localhost:8443")
    assert not answers(EVIL)


JUNK_AFTER_THE_NAME = [
    "localhost:1,for=6.6.6.6",
    "localhost:1;for=6.6.6.6",
    "localhost/@evil.example",
    "localhost:x y z",
    "localhost?q",
    "localhost#f",
    "localhost:99999999",
    "user@localhost",
    "[::1]x",
    "local host",
]


@pytest.mark.parametrize("host", JUNK_AFTER_THE_NAME)
def test_a_host_with_junk_after_our_name_is_refused(env: Env, host: str) -> None:
    """RFC 9110 §7.2: Host is uri-host [":" port]; anything more is a 421 (was 200).

    urlsplit().hostname ignored a bad port, a path, a query or spaces, and the
    whole value went upstream in ``Forwarded: host=``.
    """
    token, _ = env.key()
    _misdirected(env.request("GET", "/orders/1001", {"Host": host, "X-API-Key": token}))


@pytest.mark.parametrize(
    ("host", "forwarded"),
    [("LOCALHOST:1", "localhost:1"), ("127.0.0.1", "127.0.0.1"), ("localhost.", "localhost")],
)
def test_forwarded_names_the_canonical_host_and_port(env: Env, host: str, forwarded: str) -> None:
    """The upstream's ``Forwarded: host=`` is the name we matched and the port, nothing else."""
    token, _ = env.key()
    status, _, echoed = env.request("GET", "/echo/forwarded", {"Host": host, "X-API-Key": token})
    assert status == 200, echoed
    seen = {k.lower(): v for k, v in echoed["headers"].items()}["forwarded"]
    assert seen.endswith(f';host="{forwarded}"'), seen


def test_host_values_are_taken_only_as_name_and_port() -> None:
    """The check itself: our names with a numeric port pass, junk does not, whatever was seen."""
    from aiohttp.test_utils import make_mocked_request

    from interlock.errors import Refusal
    from interlock.gateway.hosts import GatewayNames, canonical_host

    names = GatewayNames("https://api.example.com", ["127.0.0.1", "::1", "localhost"])
    for good, canonical in [
        ("api.example.com:443", "api.example.com:443"),
        ("[::1]:8443", "[::1]:8443"),
        ("[::1]", "[::1]"),
        ("Localhost", "localhost"),
    ]:
        names.check(make_mocked_request("GET", "/", headers={"Host": good}))
        assert canonical_host(good) == canonical
    for bad in [*JUNK_AFTER_THE_NAME, "[::1]:1,x", "api.example.com:443:443", "::1"]:
        with pytest.raises(Refusal):
            names.check(make_mocked_request("GET", "/", headers={"Host": bad}))
        assert canonical_host(bad) is None
