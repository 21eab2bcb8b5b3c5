"""Signed requests (RFC 9421 HTTP Message Signatures): the client's side.

A :class:`RequestSigner` holds one key and signs one request per call; the
signature base, the structured fields, the ``Content-Digest`` (RFC 9530) and
the cryptography are the ``http-message-signatures`` library's. What goes on
the wire (the gateway verifies exactly this)::

    Content-Digest: sha-256=:<base64>:                        (a non-empty body only)
    Signature-Input: sig1=("@method" "@target-uri" "content-type" "content-digest")
        ;created=1800000000;keyid="partner-1";alg="ed25519";nonce="<22 chars>"
    Signature: sig1=:<base64>:

One signature, label ``sig1``. Covered: ``@method`` and ``@target-uri``; with a
non-empty body also ``content-type`` (when the request has one) and
``content-digest``. Parameters: ``created`` (whole seconds), ``keyid``, ``alg``
(``ed25519``, ``ecdsa-p256-sha256`` or ``hmac-sha256``) and a fresh ``nonce``.

:class:`SignedRequests` (httpx) and :class:`SignedRequestsAuth` (requests)
sign every request a client sends, after an optional inner auth (an
:class:`~interlock.sdk.InterlockAuth` token, an API key header ...).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, NoReturn, cast

import httpx
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPSignatureAlgorithm,
    MappingKeyResolver,
    SigningKey,
)
from http_message_signatures.algorithms import ECDSA_P256_SHA256, ED25519, HMAC_SHA256
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, OKPKey
from requests import PreparedRequest, Response
from requests.adapters import BaseAdapter
from requests.auth import AuthBase

from interlock.sdk.errors import InsecureTransportError
from interlock.secret import Secret

__all__ = [
    "PrivateKeyInput",
    "RequestSigner",
    "SignedRequests",
    "SignedRequestsAuth",
    "target_uri",
]

LABEL: Final = "sig1"
# RFC 2104 §3: an HMAC key shorter than the hash output (32 bytes) is strongly discouraged.
MIN_SECRET: Final = 32
_KEY_ID: Final = re.compile(r"[\x20-\x7e]{1,256}")  # an sf-string (RFC 8941 §3.3.3), capped
# scheme "://" [userinfo "@"] authority, then path and query up to the fragment.
_URL: Final = re.compile(
    r"(?P<scheme>[^:/?#]+)://(?:[^/?#@]*@)?(?P<authority>[^/?#]*)(?P<rest>[^#]*)(?:#.*)?"
)

#: An Ed25519 or P-256 private key: a joserfc ``OKPKey``/``ECKey``, a private JWK, or PEM.
PrivateKeyInput = OKPKey | ECKey | Mapping[str, Any] | bytes | str


@dataclass
class _Message:
    """The view of a request the library signs: only what the signature covers."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


class RequestSigner:
    """Signs requests with one registered key: Ed25519, ECDSA P-256 or HMAC-SHA256.

    Thread-safe (nothing changes after construction). The key cannot be
    printed, pickled or exported, and no error message names any part of it.
    """

    __slots__ = ("_algorithm", "_clock", "_key_id", "_signer")

    def __init__(
        self, key_id: str, private_key: PrivateKeyInput, *, clock: Callable[[], float] = time.time
    ) -> None:
        """Sign as ``key_id`` with an Ed25519 or P-256 private key; ``clock`` gives ``created``."""
        algorithm, key = _load_private_key(private_key)
        self._setup(key_id, algorithm, key, clock)

    @classmethod
    def from_shared_secret(
        cls, key_id: str, secret: bytes | Secret, *, clock: Callable[[], float] = time.time
    ) -> RequestSigner:
        """Sign as ``key_id`` with an HMAC-SHA256 secret of at least :data:`MIN_SECRET` bytes."""
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if not isinstance(value, bytes):
            raise TypeError("the shared secret must be bytes")
        if len(value) < MIN_SECRET:
            raise ValueError(f"the shared secret must be at least {MIN_SECRET} bytes")
        signer = cls.__new__(cls)
        signer._setup(key_id, HMAC_SHA256, value, clock)
        return signer

    def _setup(
        self,
        key_id: str,
        algorithm: type[HTTPSignatureAlgorithm],
        key: SigningKey,
        clock: Callable[[], float],
    ) -> None:
        if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
            raise ValueError("key_id must be 1 to 256 printable ASCII characters")
        self._key_id = key_id
        self._algorithm = algorithm
        self._clock = clock
        resolver = MappingKeyResolver(public_keys={}, private_keys={key_id: key})
        self._signer = HTTPMessageSigner(signature_algorithm=algorithm, key_resolver=resolver)

    @property
    def key_id(self) -> str:
        """The ``keyid`` the operator registered for this key."""
        return self._key_id

    @property
    def algorithm(self) -> str:
        """The RFC 9421 §6.2 name: ``ed25519``, ``ecdsa-p256-sha256`` or ``hmac-sha256``."""
        return self._algorithm.algorithm_id

    def sign(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> dict[str, str]:
        """The headers that sign one request: ``Signature-Input``, ``Signature``, a digest.

        ``method`` is upper case; ``url`` is the encoded ``https://`` URL the
        request goes to; ``headers`` are the request's (only ``Content-Type`` is
        read); ``body`` is the exact bytes sent. The returned headers replace any
        of the same name. Raises :class:`InsecureTransportError` for other schemes
        and ``ValueError`` for what cannot be signed.
        """
        message = _Message(method, target_uri(url))
        covered = ["@method", "@target-uri"]
        if body:
            content_type = _field(headers or {}, "content-type")
            if content_type is not None:
                message.headers["Content-Type"] = content_type
                covered.append("content-type")
        created = datetime.fromtimestamp(int(self._clock()), tz=UTC)
        try:
            # With body=, the library adds Content-Digest and covers it last.
            self._signer.sign(
                message,
                key_id=self._key_id,
                created=created,
                nonce=secrets.token_urlsafe(16),
                label=LABEL,
                covered_component_ids=covered,
                body=body or None,
            )
        except HTTPMessageSignaturesException as exc:
            raise ValueError(f"the request cannot be signed: {exc}") from None
        message.headers.pop("Content-Type", None)
        return message.headers

    def __repr__(self) -> str:
        return f"RequestSigner(key_id={self._key_id!r}, algorithm={self.algorithm!r})"

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("a RequestSigner cannot be pickled")


def target_uri(url: str) -> str:
    """``url`` as ``@target-uri`` (RFC 9421 §2.2.2): ``https://`` only, in RFC 9110 §4.2.3 form.

    Scheme and host in lower case, no default port, no userinfo, no fragment,
    an empty path as ``/``; path and query exactly as given (already encoded).
    """
    match = _URL.fullmatch(url)
    if match is None or match["scheme"].lower() != "https":
        raise InsecureTransportError("signed requests are sent over https:// only")
    authority = match["authority"].lower().removesuffix(":443")
    rest = match["rest"]
    return f"https://{authority}{rest if rest.startswith('/') else '/' + rest}"


def _field(headers: Mapping[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name), None)


def _load_private_key(value: PrivateKeyInput) -> tuple[type[HTTPSignatureAlgorithm], SigningKey]:
    key = _import(value)
    if key is not None and key.is_private:
        # The native keys are the ones joserfc checked: Ed25519 or P-256 private keys.
        if isinstance(key, OKPKey) and key.curve_name == "Ed25519":
            return ED25519, cast(SigningKey, key.private_key)
        if isinstance(key, ECKey) and key.curve_name == "P-256":
            return ECDSA_P256_SHA256, cast(SigningKey, key.private_key)
    # Key material: the message names no part of the input.
    raise ValueError(
        "private_key must be an Ed25519 or ECDSA P-256 private key "
        "(RSA, other curves and public keys are refused)"
    )


def _import(value: object) -> OKPKey | ECKey | None:
    """``value`` as a joserfc OKP or EC key, or None (another key type, or no key)."""
    candidates: list[Callable[[], object]] = []
    if isinstance(value, OKPKey | ECKey):
        return value
    if isinstance(value, Mapping) and value.get("kty") in {"OKP", "EC"}:
        candidates = [lambda: JWKRegistry.import_key(dict(value), value["kty"])]
    elif isinstance(value, bytes | str):
        pem = value.encode() if isinstance(value, str) else value
        candidates = [lambda: OKPKey.import_key(pem), lambda: ECKey.import_key(pem)]
    for load in candidates:
        try:
            key = load()
        except (JoseError, ValueError, TypeError, KeyError):
            continue
        if isinstance(key, OKPKey | ECKey):
            return key
    return None


class SignedRequests(httpx.Auth):
    """Signs every request an ``httpx.Client`` or ``httpx.AsyncClient`` sends.

    With ``inner`` (another ``httpx.Auth``), each request that auth yields,
    its retries too (a fresh token, a DPoP nonce), is signed afresh (new
    ``nonce``, new ``created``) just before it is sent. Keep redirects off
    (httpx's default): httpx follows one without calling the auth, so the
    redirected request would carry the signature made for the first URL. The
    body must be in memory (``content=``, ``data=``, ``json=``); a streaming
    body (an iterator, a file, a multipart upload not yet read) raises
    ``TypeError``.
    """

    def __init__(self, signer: RequestSigner, inner: httpx.Auth | None = None) -> None:
        """Sign with ``signer``, after ``inner`` added its credentials."""
        self._signer = signer
        # httpx.Auth itself passes each request through unchanged.
        self._inner = inner if inner is not None else httpx.Auth()

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        """Drive the inner flow, signing each request it yields."""
        flow = self._inner.sync_auth_flow(request)
        try:
            outgoing = next(flow)
            while True:
                response = yield self._sign(outgoing)
                outgoing = flow.send(response)
        except StopIteration:
            return
        finally:
            flow.close()

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """As :meth:`sync_auth_flow`, driving the inner auth's asyncio flow."""
        flow = self._inner.async_auth_flow(request)
        try:
            outgoing = await anext(flow)
            while True:
                response = yield self._sign(outgoing)
                outgoing = await flow.asend(response)
        except StopAsyncIteration:
            return
        finally:
            await flow.aclose()

    def _sign(self, request: httpx.Request) -> httpx.Request:
        if not isinstance(request.stream, httpx.ByteStream):
            raise TypeError("a streaming request body cannot be signed: pass the body as bytes")
        body = request.read()  # in memory already: no I/O
        url = str(request.url)
        request.headers.update(self._signer.sign(request.method, url, request.headers, body))
        return request

    def __repr__(self) -> str:
        return f"SignedRequests({self._signer!r}, inner={self._inner!r})"


class SignedRequestsAuth(AuthBase):
    """Signs every request a ``requests`` session sends, after an optional inner auth.

    A retry that ``inner`` sends from a response hook through
    ``response.connection.send`` (as :class:`~interlock.sdk.InterlockRequestsAuth`
    and ``requests.auth.HTTPDigestAuth`` do) is signed afresh, every retry of it
    too. A redirect is followed unsigned: ``requests`` does not call an auth
    for it, so the signature made for the first URL is removed before
    ``requests`` copies the request, and never reaches another URL (a gateway
    refuses the unsigned request). The body must be bytes or text (sent as
    UTF-8, as urllib3 2 does); a file or generator body raises ``TypeError``.
    """

    def __init__(self, signer: RequestSigner, inner: AuthBase | None = None) -> None:
        """Sign with ``signer``, after ``inner`` added its credentials."""
        self._signer = signer
        self._inner = inner

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        """Let ``inner`` authorise ``request``, then sign it."""
        # Registered before the inner auth's hooks, so it runs before they retry.
        request.register_hook("response", self._on_response)  # type: ignore[no-untyped-call]
        if self._inner is not None:
            request = self._inner(request)
        return self._sign(request)

    def _sign(self, request: PreparedRequest) -> PreparedRequest:
        body = request.body
        if isinstance(body, str):
            # What urllib3 2 sends for text; signing the bytes we send removes any doubt.
            body = request.body = body.encode("utf-8")
        if body is not None and not isinstance(body, bytes):
            raise TypeError("a streaming request body cannot be signed: pass the body as bytes")
        headers = self._signer.sign(request.method or "", request.url or "", request.headers, body)
        request.headers.update(headers)
        return request

    def _on_response(self, response: Response, **_: Any) -> Response:
        if response.is_redirect:
            _unsign(response.request)
        adapter = getattr(response, "connection", None)
        if self._inner is not None and isinstance(adapter, BaseAdapter):
            if not isinstance(adapter, _SigningAdapter):
                adapter = _SigningAdapter(adapter, self._sign, response.request)
            response.connection = adapter  # type: ignore[assignment]  # a stand-in adapter
        return response

    def __repr__(self) -> str:
        return f"SignedRequestsAuth({self._signer!r}, inner={self._inner!r})"


class _SigningAdapter(BaseAdapter):
    """Stands in for ``response.connection``: signs what an inner auth sends again."""

    def __init__(
        self,
        adapter: BaseAdapter,
        sign: Callable[[PreparedRequest], PreparedRequest],
        first: PreparedRequest,
    ) -> None:
        super().__init__()
        self._adapter = adapter
        self._sign = sign
        self._first = first

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        """Sign ``request`` and send it; the answer's further retries come here too."""
        response = self._adapter.send(self._sign(request), *args, **kwargs)
        if response.is_redirect:
            # requests follows it from the first request: neither signature may travel on.
            _unsign(request)
            _unsign(self._first)
        response.connection = self  # type: ignore[assignment]
        return response

    def close(self) -> None:
        """Close the real adapter."""
        self._adapter.close()


def _unsign(request: PreparedRequest) -> None:
    # Session.resolve_redirects copies the request without calling the auth again
    # (only Authorization is dropped, and only across hosts): a signature for this
    # URL, replayable there until its nonce is spent, must not go to the next one.
    for name in ("Signature", "Signature-Input"):
        request.headers.pop(name, None)
