"""Who is calling: a client certificate, an API key or an access token.

A credential shaped like a JWS (``eyJ...`` with two dots) is checked as an
access token (ours, RFC 9068, or a trusted issuer's); anything else as an API
key. A request without a credential but with a client certificate (verified
by the TLS handshake) is the client the certificate names (mutual TLS).

Sender-constrained tokens must come with their key: a DPoP-bound token
(``cnf.jkt``) as ``Authorization: DPoP`` with a valid proof by the bound key
on this very request (RFC 9449 §7), a certificate-bound token
(``cnf.x5t#S256``) over a connection with that very certificate (RFC 8705
§3). A stolen bound token is useless.

A connection's client certificate is checked on every request, whatever the
credential: one revoked or expired since the handshake refuses the request.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from dataclasses import dataclass
from typing import Final, Protocol

from aiohttp import web

from interlock.crypto.jose import MAX_TOKEN_BYTES
from interlock.errors import AuthenticationError, DPoPProofError, InvalidTokenError, Refusal
from interlock.gateway.client_address import client_address
from interlock.gateway.context import peer_certificate
from interlock.gateway.guessing import GuessingGuard
from interlock.gateway.hosts import GatewayNames
from interlock.gateway.mtls import ClientCertificates
from interlock.identity.apikeys import ApiKeys
from interlock.identity.grants import Grants, Principal
from interlock.identity.manifest import ManifestIdentity
from interlock.oauth.dpop import DPoPVerifier
from interlock.oauth.server import OAuthForManifest
from interlock.oauth.thumbprints import certificate_thumbprint
from interlock.oauth.tokens import AccessTokenVerifier

__all__ = ["Authentication"]

_CHALLENGE: Final = 'Bearer realm="interlock"'
_MAX_CREDENTIAL: Final = MAX_TOKEN_BYTES
_NO_CREDENTIAL: Final = "no credential"
_NONCE_CHALLENGE: Final = "DPoP nonce challenge"
# Refusals that are no guess: a request without a credential, and RFC 9449 §9's
# use_dpop_nonce, a protocol step every DPoP client meets (the token endpoint
# does not count it either).
_NOT_GUESSES: Final = frozenset({_NO_CREDENTIAL, _NONCE_CHALLENGE})
_PRINTABLE: Final = re.compile(r"[\x21-\x7e]+")


class Caller(Protocol):
    """What authentication reads and sets: a route's ``RequestContext`` or a bare request."""

    request: web.BaseRequest
    principal: Principal | None

    @property
    def peer_certificate(self) -> bytes | None:
        """The client certificate the TLS handshake verified, if any."""
        ...


@dataclass
class _Bare:
    """A request to one of the gateway's own endpoints (no route)."""

    request: web.BaseRequest
    principal: Principal | None = None

    @property
    def peer_certificate(self) -> bytes | None:
        return peer_certificate(self.request)


class Authentication:
    """Sets ``ctx.principal`` or refuses with 401 (400 for ambiguous credentials)."""

    def __init__(
        self,
        keys: ApiKeys,
        grants: Grants,
        tokens: AccessTokenVerifier | None = None,
        dpop: DPoPVerifier | None = None,
        certificates: ClientCertificates | None = None,
        *,
        names: GatewayNames,
        guessing: GuessingGuard | None = None,
    ) -> None:
        """API keys from ``keys``, tokens by ``tokens``, proofs by ``dpop``.

        ``certificates`` maps client certificates to clients, who get ``grants``;
        a DPoP proof must name the request's URL under ``names``' public URL;
        ``guessing`` limits failed attempts per source address.
        """
        self._names = names
        self._guessing = guessing
        self._keys = keys
        self._tokens = tokens
        self._dpop = dpop
        self._certificates = certificates
        self._grants = grants

    @classmethod
    def for_manifest(
        cls,
        identity: ManifestIdentity,
        oauth: OAuthForManifest,
        certificates: ClientCertificates | None,
        *,
        names: GatewayNames,
        guessing: GuessingGuard | None,
    ) -> Authentication:
        """One manifest's authentication: its callers' keys and grants, its tokens and proofs."""
        return cls(
            identity.api_keys,
            identity.grants,
            oauth.verifier,
            oauth.endpoint.dpop,
            certificates,
            names=names,
            guessing=guessing,
        )

    async def __call__(self, ctx: Caller) -> None:
        """Authenticate the request (429 first while the address's failure budget is spent)."""
        guessing = self._guessing
        if guessing is None:
            await self._authenticate(ctx)
            return
        remote = client_address(ctx.request)
        await guessing.check(remote)
        try:
            await self._authenticate(ctx)
        except Refusal as refusal:
            # A credential that failed; a request that carried none is not a guess.
            if refusal.code == "unauthorized" and refusal.log_reason not in _NOT_GUESSES:
                await guessing.failed(remote)
            raise

    async def principal_of(self, request: web.BaseRequest) -> Principal:
        """Authenticate a request to an own endpoint of the gateway (same rules, same budget)."""
        caller = _Bare(request)
        await self(caller)
        if caller.principal is None:  # pragma: no cover - authentication sets it or refuses
            raise RuntimeError("authentication set no principal")
        return caller.principal

    async def _authenticate(self, ctx: Caller) -> None:
        certificates = self._certificates
        certificate = ctx.peer_certificate if certificates is not None else None
        if certificates is not None and certificate is not None:
            # The handshake checked it once; a resumed session or a kept-alive
            # connection carries it on after a revocation or past its expiry.
            certificates.check(certificate, client_address(ctx.request))
        headers = ctx.request.headers
        if (
            certificates is not None
            and certificate is not None
            and "Authorization" not in headers
            and "X-API-Key" not in headers
        ):
            ctx.principal = self._certificate_principal(certificates, certificate)
            return
        scheme, token = _credential(ctx)
        if self._tokens is not None and token.startswith("eyJ") and token.count(".") == 2:
            try:
                # Cache hit: no I/O, answered on the loop. Miss: verified off the loop.
                principal = self._tokens.verify_cached(token)
                if principal is None:
                    principal = await asyncio.to_thread(self._tokens.verify, token)
            except InvalidTokenError as exc:
                raise _unauthorised(
                    "invalid_token", "the access token is invalid", log_reason=exc.reason
                ) from None
            if principal.dpop_jkt is not None or scheme == "dpop":
                await self._check_proof(ctx, principal, token, scheme)
            if principal.cert_thumbprint is not None and (
                certificate is None
                or not hmac.compare_digest(
                    certificate_thumbprint(certificate), principal.cert_thumbprint
                )
            ):
                raise _unauthorised(
                    "invalid_token",
                    "this access token is bound to a client certificate: present that "
                    "certificate on the connection",
                    "certificate-bound token without its certificate",
                )
            ctx.principal = principal
            return
        if scheme == "dpop":
            raise _unauthorised(
                "invalid_token",
                "the DPoP scheme carries access tokens only",
                "DPoP with an API key",
            )
        try:
            # Cache hit: verified on the loop. Miss: the store is asked off the loop.
            api_principal = self._keys.verify_cached(token)
            if api_principal is None:
                api_principal = await asyncio.to_thread(self._keys.verify, token)
            ctx.principal = api_principal
        except AuthenticationError as exc:
            raise _unauthorised("invalid_token", exc.message, log_reason=exc.reason) from None

    async def _check_proof(
        self, ctx: Caller, principal: Principal, token: str, scheme: str
    ) -> None:
        if scheme != "dpop":
            raise _unauthorised(
                "invalid_token",
                "this access token is DPoP-bound: send it as Authorization: DPoP with a proof",
                "bound token sent as Bearer",
            )
        if principal.dpop_jkt is None:
            raise _unauthorised(
                "invalid_token", "this access token is not DPoP-bound", "DPoP with unbound token"
            )
        proofs = ctx.request.headers.getall("DPoP", [])
        if self._dpop is None or len(proofs) != 1:
            raise self._proof_refused("send exactly one DPoP proof", "no or several DPoP headers")
        request = ctx.request
        try:
            # RFC 9449 §4.3 step 9: htu is the URL the client was given (the public
            # URL), never one built from the caller's Host header.
            proof = await asyncio.to_thread(
                self._dpop.check, proofs[0], request.method, self._names.target(request), token
            )
        except DPoPProofError as exc:
            if exc.error == "use_dpop_nonce":
                raise self._proof_refused(
                    "a fresh DPoP nonce is required", _NONCE_CHALLENGE, exc.error
                ) from None
            raise self._proof_refused("the DPoP proof is invalid", exc.reason, exc.error) from None
        if proof.jkt != principal.dpop_jkt:
            raise self._proof_refused(
                "the DPoP proof is invalid", "proof key differs from the token's cnf.jkt"
            )

    def _certificate_principal(
        self, certificates: ClientCertificates, certificate: bytes
    ) -> Principal:
        client = certificates.client_for(certificate)
        if client is None:
            raise _unauthorised(
                "invalid_request",
                "the client certificate does not name a client that may use mutual TLS",
                "certificate without a known mtls identity",
            )
        thumbprint = certificate_thumbprint(certificate)
        return Principal(
            client, self._grants.scopes(client), f"mtls {thumbprint[:16]}", method="mtls"
        )

    def _proof_refused(
        self, detail: str, log_reason: str, error: str = "invalid_dpop_proof"
    ) -> Refusal:
        algs = " ".join(sorted(self._dpop.algorithms)) if self._dpop else ""
        headers = {"WWW-Authenticate": f'DPoP error="{error}", algs="{algs}"'}
        if self._dpop is not None and self._dpop.nonces is not None:
            headers["DPoP-Nonce"] = self._dpop.nonces.current()
        return Refusal("unauthorized", detail, headers=headers, log_reason=log_reason)


def _credential(ctx: Caller) -> tuple[str, str]:
    """The scheme (``bearer``, ``dpop`` or ``api-key``) and the credential."""
    headers = ctx.request.headers
    authorization = headers.getall("Authorization", [])
    api_key = headers.getall("X-API-Key", [])
    if len(authorization) + len(api_key) > 1:
        raise Refusal(
            "ambiguous-credentials",
            "send exactly one credential: one Authorization header or one X-API-Key header",
        )
    if not authorization and not api_key:
        raise _unauthorised(
            None,
            "this route requires a credential: an API key, an access token or a client certificate",
            log_reason=_NO_CREDENTIAL,
        )
    if api_key:
        scheme, token = "api-key", api_key[0].strip()
    else:
        given, _, token = authorization[0].strip().partition(" ")
        token = token.strip()
        scheme = given.lower()
        if scheme not in {"bearer", "dpop"}:
            raise _unauthorised(
                "invalid_request",
                "use the Bearer scheme (or DPoP for bound tokens): Authorization: Bearer <key>",
                log_reason="unsupported Authorization scheme",
            )
    # RFC 6750 §2.1: a token is printable ASCII (b64token); so are our API keys. Bytes
    # that are not (not even UTF-8) are a malformed credential, refused like any other.
    if not token or len(token) > _MAX_CREDENTIAL or not _PRINTABLE.fullmatch(token):
        raise _unauthorised(
            "invalid_request", "the credential is malformed", log_reason="malformed credential"
        )
    return scheme, token


def _unauthorised(error: str | None, detail: str, log_reason: str) -> Refusal:
    # RFC 6750 §3: no error attribute when the request carried no credential at all.
    challenge = _CHALLENGE + (f', error="{error}"' if error else "")
    return Refusal(
        "unauthorized", detail, headers={"WWW-Authenticate": challenge}, log_reason=log_reason
    )
