"""Signed requests (RFC 9421): RequestSigner, SignedRequests (httpx), SignedRequestsAuth (requests).

Every signature is checked with the library's own ``HTTPMessageVerifier``, a
verifier independent of the signing code path, with the digest checked
against the body that was actually sent.
"""

from __future__ import annotations

import asyncio
import io
import pickle
import re
import secrets
import ssl
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests
from http_message_signatures import (
    HTTPMessageVerifier,
    HTTPSignatureAlgorithm,
    InvalidSignature,
    MappingKeyResolver,
    VerificationKey,
    VerifyResult,
)
from http_message_signatures.algorithms import ECDSA_P256_SHA256, ED25519, HMAC_SHA256
from joserfc.jwk import ECKey, OKPKey, RSAKey
from requests.adapters import BaseAdapter
from requests.auth import AuthBase

from interlock.sdk import (
    InsecureTransportError,
    InterlockAuth,
    InterlockRequestsAuth,
    RequestSigner,
    SignedRequests,
    SignedRequestsAuth,
)
from interlock.sdk.rfc9421 import target_uri
from interlock.secret import Secret
from tests.sdk.fake_server import FakeServer, Seen, credentials_for

KEY_ID = "partner-1"
URL = "https://gateway.example/orders?status=open"
BODY = b'{"order": 1001}'
JSON = {"content-type": "application/json"}
SIGNATURE_INPUT = re.compile(
    r'sig1=\((?P<components>[^)]*)\);created=(?P<created>\d+);keyid="partner-1"'
    r';alg="(?P<alg>[a-z0-9-]+)";nonce="(?P<nonce>[A-Za-z0-9_-]{22})"'
)


@dataclass
class Message:
    """A request as the verifier reads it."""

    method: str
    url: str
    headers: Mapping[str, str]


@dataclass
class Party:
    """A client's signer and what the gateway would hold to verify it."""

    signer: RequestSigner
    algorithm: type[HTTPSignatureAlgorithm]
    public: VerificationKey

    def verify(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> VerifyResult:
        """Verify like a gateway: method and target URI covered, digest checked against body."""
        resolver = MappingKeyResolver(public_keys={KEY_ID: self.public}, private_keys={})
        verifier = HTTPMessageVerifier(signature_algorithm=self.algorithm, key_resolver=resolver)
        (result,) = verifier.verify(
            Message(method, url, headers),
            require_components=("@method", "@target-uri"),
            body=body,
        )
        return result


Clock = Callable[[], float]


def ed25519_party(clock: Clock = time.time) -> Party:
    """An Ed25519 key pair."""
    key = OKPKey.generate_key("Ed25519", private=True)
    return Party(RequestSigner(KEY_ID, key, clock=clock), ED25519, key.as_pem(private=False))


def p256_party(clock: Clock = time.time) -> Party:
    """An ECDSA P-256 key pair."""
    key = ECKey.generate_key("P-256", private=True)
    signer = RequestSigner(KEY_ID, key, clock=clock)
    return Party(signer, ECDSA_P256_SHA256, key.as_pem(private=False))


def hmac_party(clock: Clock = time.time) -> Party:
    """A 32-byte shared secret."""
    secret = secrets.token_bytes(32)
    signer = RequestSigner.from_shared_secret(KEY_ID, secret, clock=clock)
    return Party(signer, HMAC_SHA256, secret)


@pytest.fixture(
    params=[ed25519_party, p256_party, hmac_party],
    ids=["ed25519", "ecdsa-p256-sha256", "hmac-sha256"],
)
def make_party(request: pytest.FixtureRequest) -> Callable[..., Party]:
    """A maker of parties, one per algorithm."""
    make: Callable[..., Party] = request.param
    return make


@pytest.fixture
def party(make_party: Callable[..., Party]) -> Party:
    """One party per algorithm, on the real clock."""
    return make_party()


def _signed(party: Party, method: str = "POST", body: bytes | None = BODY) -> dict[str, str]:
    headers = dict(JSON)
    headers.update(party.signer.sign(method, URL, headers, body))
    return headers


def _input(headers: Mapping[str, str]) -> re.Match[str]:
    match = SIGNATURE_INPUT.fullmatch(headers["Signature-Input"])
    assert match is not None, headers["Signature-Input"]
    return match


# -- the signer ---------------------------------------------------------------------------


def test_signature_verifies_with_body_and_digest(party: Party) -> None:
    """Sign, then verify independently: signature, coverage, digest, parameters."""
    headers = _signed(party)
    result = party.verify("POST", URL, headers, BODY)
    assert result.label == "sig1"
    assert result.body == BODY
    assert list(result.covered_components)[:-1] == [
        '"@method"',
        '"@target-uri"',
        '"content-type"',
        '"content-digest"',
    ]
    assert result.parameters["keyid"] == KEY_ID
    assert result.parameters["alg"] == party.signer.algorithm
    assert isinstance(result.parameters["created"], int)
    assert result.nonce is not None


def test_signature_input_has_the_exact_wire_shape(make_party: Callable[..., Party]) -> None:
    """sig1, components in order, created from the clock, keyid, alg, a 22-character nonce."""
    signer = make_party(clock=lambda: 1_800_000_000.9).signer
    headers = signer.sign("POST", URL, JSON, BODY)
    assert set(headers) == {"Signature-Input", "Signature", "Content-Digest"}
    match = _input(headers)
    assert match["components"] == '"@method" "@target-uri" "content-type" "content-digest"'
    assert match["created"] == "1800000000"
    assert match["alg"] == signer.algorithm
    assert re.fullmatch(r"sig1=:[A-Za-z0-9+/]+=*:", headers["Signature"])
    assert re.fullmatch(r"sha-256=:[A-Za-z0-9+/]{43}=:", headers["Content-Digest"])


def test_request_without_body_covers_method_and_target_uri_only(party: Party) -> None:
    """No body (or an empty one): no Content-Digest, Content-Type not covered."""
    for body in (None, b""):
        headers = _signed(party, "GET", body)
        assert "Content-Digest" not in headers
        assert _input(headers)["components"] == '"@method" "@target-uri"'
        party.verify("GET", URL, headers, b"")


def test_body_without_content_type_covers_the_digest(party: Party) -> None:
    """Content-Type is covered only when the request has one."""
    headers = party.signer.sign("PUT", URL, {}, BODY)
    assert _input(headers)["components"] == '"@method" "@target-uri" "content-digest"'
    party.verify("PUT", URL, headers, BODY)


def test_changed_body_fails_the_digest_check(party: Party) -> None:
    """The signed digest does not match another body."""
    headers = _signed(party)
    with pytest.raises(InvalidSignature, match="Content-Digest"):
        party.verify("POST", URL, headers, b'{"order": 1002}')


@pytest.mark.parametrize(
    ("method", "url"),
    [("PUT", URL), ("POST", "https://gateway.example/orders?status=closed")],
    ids=["method", "url"],
)
def test_changed_method_or_url_fails_the_signature(party: Party, method: str, url: str) -> None:
    """The signature covers @method and @target-uri."""
    headers = _signed(party)
    with pytest.raises(InvalidSignature):
        party.verify(method, url, headers, BODY)


def test_changed_content_type_fails_the_signature(party: Party) -> None:
    """Content-Type is covered with a body."""
    headers = _signed(party)
    headers["content-type"] = "text/plain"
    with pytest.raises(InvalidSignature):
        party.verify("POST", URL, headers, BODY)


def test_each_signature_has_a_new_nonce(party: Party) -> None:
    """Twenty signatures of the same request: twenty nonces."""
    nonces = {_input(_signed(party))["nonce"] for _ in range(20)}
    assert len(nonces) == 20


def test_signer_is_usable_from_many_threads(party: Party) -> None:
    """Concurrent signing: every signature verifies, no nonce repeats."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        signed = list(pool.map(lambda _: _signed(party), range(64)))
    for headers in signed:
        party.verify("POST", URL, headers, BODY)
    assert len({_input(headers)["nonce"] for headers in signed}) == 64


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://GW.Example:443/a%20b?x=1#part", "https://gw.example/a%20b?x=1"),
        ("https://user:pw@gw.example:8443", "https://gw.example:8443/"),
        ("https://gw.example?q", "https://gw.example/?q"),
        ("HTTPS://[::1]:443/p", "https://[::1]/p"),
    ],
)
def test_target_uri_is_in_normal_form(url: str, expected: str) -> None:
    """RFC 9110 §4.2.3: what the gateway rebuilds from the Host header and the request line."""
    assert target_uri(url) == expected


@pytest.mark.parametrize("url", ["http://gateway.example/orders", "ftp://x/", "gateway.example/"])
def test_plain_http_is_refused(party: Party, url: str) -> None:
    """Signed requests go over https:// only."""
    with pytest.raises(InsecureTransportError):
        party.signer.sign("GET", url)


def test_unsignable_request_is_a_value_error(party: Party) -> None:
    """A lower-case method or an unencoded URL: ValueError naming the problem."""
    with pytest.raises(ValueError, match="method"):
        party.signer.sign("get", URL)
    with pytest.raises(ValueError, match="URL"):
        party.signer.sign("GET", "https://gateway.example/a b")


# -- keys ---------------------------------------------------------------------------------


def test_pem_and_jwk_private_keys_are_accepted() -> None:
    """PEM (bytes or text) and private JWKs load; the algorithm follows the key."""
    ed = OKPKey.generate_key("Ed25519", private=True)
    ec = ECKey.generate_key("P-256", private=True)
    for key, alg in ((ed, "ed25519"), (ec, "ecdsa-p256-sha256")):
        pem = key.as_pem(private=True)
        for given in (pem, pem.decode(), key.as_dict(private=True)):
            assert RequestSigner(KEY_ID, given).algorithm == alg


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: RSAKey.generate_key(2048, private=True), id="rsa"),
        pytest.param(
            lambda: RSAKey.generate_key(2048, private=True).as_pem(private=True), id="rsa-pem"
        ),
        pytest.param(lambda: ECKey.generate_key("P-384", private=True), id="p384"),
        pytest.param(lambda: ECKey.generate_key("secp256k1", private=True), id="secp256k1"),
        pytest.param(lambda: OKPKey.generate_key("X25519", private=True), id="x25519"),
        pytest.param(lambda: OKPKey.generate_key("Ed448", private=True), id="ed448"),
        pytest.param(lambda: OKPKey.generate_key("Ed25519", private=False), id="public-okp"),
        pytest.param(lambda: ECKey.generate_key("P-256", private=False), id="public-ec"),
        pytest.param(
            lambda: ECKey.generate_key("P-256", private=True).as_pem(private=False), id="public-pem"
        ),
        pytest.param(lambda: {"kty": "oct", "k": "c2VjcmV0"}, id="oct-jwk"),
        pytest.param(lambda: b"not a key", id="garbage"),
    ],
)
def test_unsupported_keys_are_refused(make: Callable[[], Any]) -> None:
    """RSA, other curves, public keys and garbage: one clear ValueError."""
    with pytest.raises(ValueError, match="Ed25519 or ECDSA P-256 private key"):
        RequestSigner(KEY_ID, make())


def test_short_or_textual_shared_secret_is_refused() -> None:
    """HMAC-SHA256 secrets are bytes, at least 32 of them."""
    with pytest.raises(ValueError, match="at least 32 bytes"):
        RequestSigner.from_shared_secret(KEY_ID, secrets.token_bytes(31))
    with pytest.raises(TypeError, match="bytes"):
        RequestSigner.from_shared_secret(KEY_ID, "s" * 40)  # type: ignore[arg-type]


def test_shared_secret_may_be_a_secret() -> None:
    """interlock's masking Secret is accepted as the shared secret."""
    value = secrets.token_bytes(32)
    signer = RequestSigner.from_shared_secret(KEY_ID, Secret(value))
    Party(signer, HMAC_SHA256, value).verify("GET", URL, signer.sign("GET", URL))


@pytest.mark.parametrize("key_id", ["", "é", "a\nb", "k" * 257])
def test_unusable_key_id_is_refused(key_id: str) -> None:
    """A keyid is 1 to 256 printable ASCII characters."""
    with pytest.raises(ValueError, match="key_id"):
        RequestSigner.from_shared_secret(key_id, b"k" * 32)


def test_key_is_absent_from_repr_pickle_and_errors() -> None:
    """repr and str name the key id and algorithm only; pickling and copying are refused."""
    secret = b"S" * 32
    ed = OKPKey.generate_key("Ed25519", private=True)
    pem = ed.as_pem(private=True)
    signers = [RequestSigner.from_shared_secret(KEY_ID, secret), RequestSigner(KEY_ID, pem)]
    for signer in signers:
        for text in (repr(signer), str(signer), repr(SignedRequests(signer))):
            assert "SSSS" not in text
            assert "PRIVATE" not in text
            assert str(ed.as_dict(private=True)["d"]) not in text
        assert repr(signer).startswith("RequestSigner(key_id='partner-1', algorithm=")
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(signer)
    broken = pem[: len(pem) // 2] + b"\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ValueError, match="private key") as refused:
        RequestSigner(KEY_ID, broken)
    assert refused.value.__cause__ is None
    assert refused.value.__context__ is None  # no chained joserfc error quoting the input
    assert "PRIVATE" not in str(refused.value)
    with pytest.raises(ValueError, match="32 bytes") as short:
        RequestSigner.from_shared_secret(KEY_ID, b"S" * 31)
    assert "SSS" not in str(short.value)


# -- httpx --------------------------------------------------------------------------------


class RetryOnce(httpx.Auth):
    """An inner auth that adds an API key and, after a 401, retries once with another."""

    def __init__(self) -> None:
        """Start with the first key."""
        self.keys = iter(["key-1", "key-2"])

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        """Send, and again once after a 401."""
        request.headers["X-Api-Key"] = next(self.keys)
        response = yield request
        if response.status_code == 401:
            request.headers["X-Api-Key"] = next(self.keys)
            yield request


def _verifying_handler(party: Party, seen: list[VerifyResult]) -> Callable[..., httpx.Response]:
    """A mock gateway: verifies each request; 401 for key-1, 200 otherwise."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = request.read()
        seen.append(party.verify(request.method, str(request.url), request.headers, body))
        return httpx.Response(401 if request.headers.get("X-Api-Key") == "key-1" else 200)

    return handle


def test_httpx_client_signs_each_request_and_each_retry(party: Party) -> None:
    """A retry by the inner auth is signed afresh: new nonce, still valid, body digest too."""
    seen: list[VerifyResult] = []
    transport = httpx.MockTransport(_verifying_handler(party, seen))
    auth = SignedRequests(party.signer, RetryOnce())
    with httpx.Client(transport=transport, auth=auth) as client:
        response = client.post(URL, json={"order": 1001})
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    first, retried = seen
    assert first.nonce != retried.nonce
    assert first.body == retried.body == b'{"order":1001}'
    assert '"content-type"' in retried.covered_components


def test_httpx_async_client_signs_each_request_and_each_retry(party: Party) -> None:
    """The same with httpx.AsyncClient, driving the inner auth's async flow."""
    seen: list[VerifyResult] = []
    transport = httpx.MockTransport(_verifying_handler(party, seen))

    async def main() -> httpx.Response:
        auth = SignedRequests(party.signer, RetryOnce())
        async with httpx.AsyncClient(transport=transport, auth=auth) as client:
            return await client.put(URL, content=BODY)

    response = asyncio.run(main())
    assert response.status_code == 200
    assert len(seen) == 2
    assert seen[0].nonce != seen[1].nonce


def test_httpx_without_inner_auth_signs_a_get(party: Party) -> None:
    """No inner auth: one signed request, no digest for an empty body."""
    seen: list[VerifyResult] = []
    transport = httpx.MockTransport(_verifying_handler(party, seen))
    with httpx.Client(transport=transport, auth=SignedRequests(party.signer)) as client:
        assert client.get(URL).status_code == 200
    (result,) = seen
    assert list(result.covered_components)[:-1] == ['"@method"', '"@target-uri"']


def test_httpx_streaming_body_is_refused(party: Party) -> None:
    """An iterator body cannot be signed: TypeError, nothing sent."""
    sent: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    transport = httpx.MockTransport(handle)
    with (
        httpx.Client(transport=transport, auth=SignedRequests(party.signer)) as client,
        pytest.raises(TypeError, match="streaming request body"),
    ):
        client.post(URL, content=iter([b"a", b"b"]))
    assert sent == []


def test_httpx_plain_http_is_refused(party: Party) -> None:
    """No signed request over http://, nothing sent."""
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    with (
        httpx.Client(transport=transport, auth=SignedRequests(party.signer)) as client,
        pytest.raises(InsecureTransportError),
    ):
        client.get(URL.replace("https://", "http://"))


def _verify_seen(party: Party, server: FakeServer, seen: Seen, method: str, body: bytes) -> str:
    result = party.verify(method, server.base + seen.path, seen.headers, body)
    assert result.nonce is not None
    return result.nonce


def test_httpx_wraps_interlock_auth_on_real_tls(party: Party, server: FakeServer) -> None:
    """InterlockAuth inside: a revoked token's 401, the retry with a new token is re-signed."""
    auth = SignedRequests(party.signer, InterlockAuth(credentials_for(server)))
    context = ssl.create_default_context(cafile=str(server.ca_file))
    with httpx.Client(auth=auth, verify=context) as client:
        assert client.get(server.resource).status_code == 200
        server.revoke_all()
        response = client.post(server.resource, content=BODY)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    first, refused, retried = server.resource_requests
    _verify_seen(party, server, first, "GET", b"")
    nonces = {_verify_seen(party, server, seen, "POST", BODY) for seen in (refused, retried)}
    assert len(nonces) == 2
    assert refused.headers["authorization"] != retried.headers["authorization"]


# -- requests -----------------------------------------------------------------------------


@pytest.fixture
def session(server: FakeServer) -> Iterator[requests.Session]:
    """A session trusting the fake server's CA."""
    with requests.Session() as session:
        session.trust_env = False
        session.verify = str(server.ca_file)
        yield session


def test_requests_wraps_interlock_auth_and_resigns_its_retry(
    party: Party, server: FakeServer, session: requests.Session
) -> None:
    """InterlockRequestsAuth retries from a response hook; that retry is signed afresh."""
    session.auth = SignedRequestsAuth(party.signer, InterlockRequestsAuth(credentials_for(server)))
    assert session.get(server.resource, timeout=10).status_code == 200
    server.revoke_all()
    response = session.post(server.resource, data=BODY, headers=JSON, timeout=10)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    first, refused, retried = server.resource_requests
    _verify_seen(party, server, first, "GET", b"")
    nonces = {_verify_seen(party, server, seen, "POST", BODY) for seen in (refused, retried)}
    assert len(nonces) == 2
    assert "content-type" in retried.headers["signature-input"]


class RetryTwice(AuthBase):
    """An inner auth that, like HTTPDigestAuth, resends twice from its response hook."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Watch the answer."""
        request.register_hook("response", self._again)  # type: ignore[no-untyped-call]
        return request

    def _again(self, response: requests.Response, **send: Any) -> requests.Response:
        for _ in range(2):
            _ = response.content
            response.close()
            again = response.request.copy()
            answer = response.connection.send(again, **send)
            answer.history.append(response)
            response = answer
        return response


def test_requests_resigns_every_retry_of_the_inner_auth(
    party: Party, server: FakeServer, session: requests.Session
) -> None:
    """Three sends of one request: three valid signatures, three nonces."""
    auth = SignedRequestsAuth(party.signer, RetryTwice())
    session.post(server.resource, data=BODY.decode(), auth=auth, timeout=10)
    assert len(server.resource_requests) == 3
    nonces = {_verify_seen(party, server, seen, "POST", BODY) for seen in server.resource_requests}
    assert len(nonces) == 3


def test_requests_without_inner_auth_signs_text_as_utf8(
    party: Party, server: FakeServer, session: requests.Session
) -> None:
    """A text body is signed as the UTF-8 bytes that are sent."""
    text = "größe=1"
    auth = SignedRequestsAuth(party.signer)
    session.post(server.resource, data=text, auth=auth, timeout=10)
    (seen,) = server.resource_requests
    _verify_seen(party, server, seen, "POST", text.encode())


def test_requests_streaming_body_and_plain_http_are_refused(
    party: Party, server: FakeServer, session: requests.Session
) -> None:
    """A generator body: TypeError; http://: InsecureTransportError; nothing sent."""
    auth = SignedRequestsAuth(party.signer)
    with pytest.raises(TypeError, match="streaming request body"):
        session.post(server.resource, data=iter([b"a"]), auth=auth, timeout=10)
    with pytest.raises(InsecureTransportError):
        session.get(server.resource.replace("https://", "http://"), auth=auth, timeout=10)
    assert server.resource_requests == []


class Scripted(BaseAdapter):
    """A mock origin answering with the given statuses in turn; a 302 points to another host."""

    def __init__(self, *statuses: int) -> None:
        """Answer with ``statuses``, in order."""
        super().__init__()
        self.statuses = list(statuses)
        self.sent: list[requests.PreparedRequest] = []

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Record a copy of what was sent; answer with the next status."""
        self.sent.append(request.copy())
        response = requests.Response()
        response.status_code = self.statuses.pop(0)
        response.headers["Location"] = "https://elsewhere.example/next"
        response.raw = io.BytesIO(b"")
        response.request = request
        response.url = request.url or ""
        response.connection = self  # type: ignore[assignment]
        return response

    def close(self) -> None:
        """Nothing to close."""


class RetryOn401(AuthBase):
    """An inner auth that adds an API key and resends once after a 401, from its hook."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Add the key and watch the answer."""
        request.headers["X-Api-Key"] = "key-1"
        request.register_hook("response", self._again)  # type: ignore[no-untyped-call]
        return request

    def _again(self, response: requests.Response, **send: Any) -> requests.Response:
        if response.status_code != 401:
            return response
        again = response.request.copy()
        again.headers["X-Api-Key"] = "key-2"
        answer = response.connection.send(again, **send)
        answer.history.append(response)
        return answer


@pytest.mark.parametrize(
    ("inner", "statuses"),
    [(None, (302, 200)), (RetryOn401, (302, 200)), (RetryOn401, (401, 302, 200))],
    ids=["alone", "wrapping", "after-a-retry"],
)
def test_requests_redirect_is_followed_without_the_signature(
    party: Party, inner: type[AuthBase] | None, statuses: tuple[int, ...]
) -> None:
    """requests does not re-run the auth for a redirect: no signature is carried on to it."""
    origin = Scripted(*statuses)
    with requests.Session() as session:
        session.mount("https://", origin)
        auth = SignedRequestsAuth(party.signer, inner() if inner else None)
        response = session.get(URL, auth=auth, timeout=10)
    assert response.status_code == 200
    *signed, redirected = origin.sent
    assert len({party.verify("GET", URL, sent.headers).nonce for sent in signed}) == len(signed)
    assert redirected.url == "https://elsewhere.example/next"
    assert "Signature" not in redirected.headers
    assert "Signature-Input" not in redirected.headers


def test_async_flow_of_a_plain_auth_is_driven(party: Party) -> None:
    """An inner auth with only an async flow override is driven in AsyncClient."""

    class AsyncHeader(httpx.Auth):
        async def async_auth_flow(
            self, request: httpx.Request
        ) -> AsyncGenerator[httpx.Request, httpx.Response]:
            request.headers["X-Api-Key"] = "key-2"
            yield request

    seen: list[VerifyResult] = []
    transport = httpx.MockTransport(_verifying_handler(party, seen))

    async def main() -> int:
        auth = SignedRequests(party.signer, AsyncHeader())
        async with httpx.AsyncClient(transport=transport, auth=auth) as client:
            return (await client.get(URL)).status_code

    assert asyncio.run(main()) == 200
    assert len(seen) == 1
