"""Token, revocation (RFC 7009) and introspection (RFC 7662) endpoints.

The token endpoint grants ``client_credentials`` only, with errors exactly
per RFC 6749 §5.2; all three authenticate the calling client the same way.

HTTP-agnostic: the gateway hands over the Authorization and DPoP header
values, the request URI and the parsed form, and renders the
:class:`TokenResponse` of a success, or the RFC 6749 §5.2 error of the
:class:`~interlock.errors.Refusal` raised otherwise (its code is the ``error``).
Client authentication by ``client_secret_basic``, ``client_secret_post`` or
``private_key_jwt`` (RFC 7523); using two at once is refused (RFC 6749 §2.3: a
client MUST NOT use more than one method).
``tls_client_auth`` (RFC 8705 §2) plugs in through :class:`CertificateClients`:
a request with ``client_id`` and no other credential, on a connection whose
client certificate the TLS handshake verified, authenticates the client when
the hook says the certificate belongs to it. The mutual-TLS work provides the
hook (certificate identities per client); without one the method is not offered.

With a ``DPoP`` proof (RFC 9449 §5) the token is bound to the proof's key
(``cnf.jkt``) and its type is ``DPoP``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from urllib.parse import unquote

from interlock.config.manifest import Manifest
from interlock.crypto.jose import SIGNING_ALGORITHMS
from interlock.errors import (
    AuthenticationError,
    DPoPProofError,
    InterlockError,
    NotFoundError,
    Refusal,
)
from interlock.identity.client_secrets import ClientSecrets
from interlock.identity.clients import is_oauth_client
from interlock.identity.grants import Grants
from interlock.oauth.client_assertion import ASSERTION_TYPE, ClientAssertions
from interlock.oauth.dpop import DPoPVerifier
from interlock.oauth.guard import AttemptGuard, NoGuard
from interlock.oauth.revocation import TokenRevocations
from interlock.oauth.thumbprints import certificate_thumbprint
from interlock.oauth.tokens import TokenIssuer

__all__ = ["CertificateClients", "TokenEndpoint", "TokenResponse", "metadata"]

_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass(frozen=True)
class TokenResponse:
    """Status, JSON body and headers of a token endpoint answer that is not an error."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    log_reason: str | None = None
    client: str | None = None  # the authenticated client, for the audit trail
    jti: str | None = None  # the issued token's id, for the audit trail


def _refused(
    error: str,
    description: str,
    *,
    basic: bool = False,
    reason: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Refusal:
    """An RFC 6749 §5.2 error: ``error`` is the code, ``description`` its description."""
    headers = dict(headers or {})
    if basic:
        # RFC 6749 §5.2: 401 with a challenge matching the scheme the client used.
        headers["WWW-Authenticate"] = 'Basic realm="interlock", charset="UTF-8"'
    return Refusal(error, description, headers=headers, log_reason=reason or description)


class _NeedsStore(InterlockError):  # noqa: N818  (control flow, never leaves this module)
    """handle_now cannot answer without reading the store."""

    code = "needs_store"


class CertificateClients(Protocol):
    """The ``tls_client_auth`` hook: which client a verified certificate belongs to."""

    def belongs_to(self, client_id: str, certificate: bytes) -> bool:
        """Whether ``certificate`` (DER, verified by the handshake) identifies ``client_id``."""
        ...


class TokenEndpoint:
    """Issues access tokens for authenticated clients."""

    def __init__(
        self,
        secrets: ClientSecrets,
        issuer: TokenIssuer,
        revocations: TokenRevocations,
        guard: AttemptGuard | None = None,
        *,
        assertions: ClientAssertions | None = None,
        dpop: DPoPVerifier | None = None,
        certificates: CertificateClients | None = None,
    ) -> None:
        """Authenticate with ``secrets``, sign with ``issuer``, revoke through ``revocations``.

        ``guard`` is consulted before every client authentication and told of
        every failure (the rate-limit hook against secret guessing).
        ``assertions`` enables ``private_key_jwt``; ``dpop`` enables DPoP-bound tokens.
        """
        self._secrets = secrets
        self._issuer = issuer
        self._revocations = revocations
        self._guard: AttemptGuard = guard or NoGuard()
        self._assertions = assertions
        self._certificates = certificates
        self._grants = Grants(secrets.manifest)
        self.dpop = dpop

    @property
    def issuer(self) -> str:
        """The issuer URL tokens carry."""
        return self._issuer.issuer

    @property
    def manifest(self) -> Manifest:
        """The manifest clients and grants come from."""
        return self._secrets.manifest

    @manifest.setter
    def manifest(self, manifest: Manifest) -> None:
        self._grants = Grants(manifest)
        self._secrets.manifest = manifest
        if self._assertions is not None:
            self._assertions.keys.manifest = manifest

    @property
    def auth_methods(self) -> list[str]:
        """The client authentication methods offered (RFC 8414 metadata)."""
        methods = ["client_secret_basic", "client_secret_post"]
        if self._assertions is not None:
            methods.append("private_key_jwt")
        if self._certificates is not None:
            methods.append("tls_client_auth")
        return methods

    def handle(
        self,
        authorization: Sequence[str],
        form: Mapping[str, Sequence[str]],
        remote: str | None = None,
        *,
        dpop: Sequence[str] = (),
        uri: str | None = None,
        peer_certificate: bytes | None = None,
    ) -> TokenResponse:
        """Answer one token request (``POST /oauth2/token`` at ``uri``).

        Raises :class:`~interlock.errors.Refusal` with the RFC 6749 §5.2 error.
        """
        return self._handle(authorization, form, remote, dpop, uri, peer_certificate, True)

    def _handle(  # noqa: PLR0917  (handle's arguments, and whether the store may be read)
        self,
        authorization: Sequence[str],
        form: Mapping[str, Sequence[str]],
        remote: str | None,
        dpop: Sequence[str],
        uri: str | None,
        peer_certificate: bytes | None,
        store: bool,
    ) -> TokenResponse:
        client_id, params = self._authenticate(
            authorization, form, remote, peer_certificate, store=store
        )
        jkt: str | None = None
        if dpop:
            jkt = self._dpop_key(dpop, uri or f"{self.issuer}/oauth2/token")
        # RFC 8705 §3: over mutual TLS with the client's own certificate, the token is
        # bound to that certificate, whichever way the client authenticated.
        x5t = None
        if (
            peer_certificate is not None
            and self._certificates is not None
            and self._certificates.belongs_to(client_id, peer_certificate)
        ):
            x5t = certificate_thumbprint(peer_certificate)
        return self._grant(client_id, params, jkt, form.get("resource", ()), x5t)

    def handle_now(
        self,
        authorization: Sequence[str],
        form: Mapping[str, Sequence[str]],
        remote: str | None = None,
    ) -> TokenResponse | None:
        """The answer to a secret-authenticated token request when it needs no I/O, else ``None``.

        That is: the guard works in memory, the secret's row was read in the last
        second and the signing keys are in memory. The caller can then answer on
        its event loop; otherwise it calls :meth:`handle` where blocking is fine.
        Raises :class:`~interlock.errors.Refusal` as :meth:`handle` does.
        """
        if (
            self._guard.blocking
            or not self._issuer.ready()
            or "client_assertion" in form
            or "client_assertion_type" in form
            or len(authorization) > 1
        ):
            return None
        try:
            return self._handle(authorization, form, remote, (), None, None, False)
        except _NeedsStore:
            return None

    def _dpop_key(self, proofs: Sequence[str], uri: str) -> str:
        """The thumbprint of a valid DPoP proof's key; else the RFC 9449 §5 error is raised."""
        if self.dpop is None:
            raise _refused("invalid_dpop_proof", "DPoP is not enabled on this server")
        if len(proofs) > 1:
            raise _refused("invalid_dpop_proof", "send exactly one DPoP header")
        try:
            return self.dpop.check(proofs[0], "POST", uri).jkt
        except DPoPProofError as exc:
            nonce = self.dpop.nonces
            headers = {"DPoP-Nonce": nonce.current()} if nonce is not None else {}
            description = (
                "a fresh DPoP nonce is required"
                if exc.error == "use_dpop_nonce"
                else "the DPoP proof is invalid"
            )
            raise _refused(exc.error, description, reason=exc.reason, headers=headers) from None

    def revoke(
        self,
        authorization: Sequence[str],
        form: Mapping[str, Sequence[str]],
        remote: str | None = None,
    ) -> TokenResponse:
        """RFC 7009: revoke one of the calling client's tokens; 200 whatever the token."""
        client_id, token = self._client_and_token(authorization, form, remote)
        # §2.2: an invalid or unknown token is not an error; a client may revoke
        # only its own tokens, others are left alone without saying so.
        self._revocations.revoke(token, client_id)
        return TokenResponse(200, {}, dict(_NO_STORE))

    def introspect(
        self,
        authorization: Sequence[str],
        form: Mapping[str, Sequence[str]],
        remote: str | None = None,
    ) -> TokenResponse:
        """RFC 7662: the state of a token, for an authenticated caller.

        §4: a caller learns about its own tokens only, unless the manifest lets
        it introspect every client's (``introspection: all``).
        """
        client_id, token = self._client_and_token(authorization, form, remote)
        client = self.manifest.clients.get(client_id)
        any_client = client is not None and client.introspection == "all"
        answer = self._revocations.introspect(token, client_id, any_client=any_client)
        return TokenResponse(200, answer, dict(_NO_STORE), client=client_id)

    def _client_and_token(
        self,
        authorization: Sequence[str],
        form: Mapping[str, Sequence[str]],
        remote: str | None,
    ) -> tuple[str, str]:
        """The authenticated client and the ``token`` parameter."""
        client_id, params = self.authenticate_client(authorization, form, remote)
        token = params.get("token")
        if not token:
            raise _refused("invalid_request", "token is required")
        return client_id, token

    def authenticate_client(
        self,
        authorization: Sequence[str],
        form: Mapping[str, Sequence[str]],
        remote: str | None = None,
        peer_certificate: bytes | None = None,
    ) -> tuple[str, dict[str, str]]:
        """The authenticated client id and the single-valued parameters.

        Raises :class:`~interlock.errors.Refusal` with the RFC 6749 §5.2 error.
        """
        return self._authenticate(authorization, form, remote, peer_certificate, store=True)

    def _authenticate(
        self,
        authorization: Sequence[str],
        form: Mapping[str, Sequence[str]],
        remote: str | None,
        peer_certificate: bytes | None,
        *,
        store: bool,
    ) -> tuple[str, dict[str, str]]:
        # RFC 8707 §2: resource may be given several times; nothing else may.
        repeated = sorted(n for n, values in form.items() if len(values) > 1 and n != "resource")
        if repeated:
            raise _refused("invalid_request", f"parameter {repeated[0]} is repeated")
        params = {name: values[0] for name, values in form.items()}
        basic = [a for a in authorization if a.lower().startswith("basic ")]
        if len(authorization) > 1 or (authorization and not basic):
            raise _refused("invalid_request", "use one Authorization header with Basic")
        assertion = "client_assertion" in params or "client_assertion_type" in params
        if sum((bool(basic), "client_secret" in params, assertion)) > 1:
            raise _refused("invalid_request", "use one client authentication method only")
        if assertion:
            return self._authenticate_assertion(params, remote)
        if not basic and "client_secret" not in params and peer_certificate is not None:
            return self._authenticate_certificate(params, peer_certificate, remote)
        credentials = _basic(basic[0]) if basic else _post(params)
        if credentials is None:
            self._guard.failed(params.get("client_id"), remote)  # malformed counts as a guess
            raise _refused("invalid_client", "client authentication failed", basic=bool(basic))
        client_id, secret = credentials
        if basic and "client_id" in params and params["client_id"] != client_id:
            raise _refused("invalid_request", "client_id differs from the Basic credentials")
        wait = self._guard.retry_after(client_id, remote)
        if wait is not None:
            raise _too_many(wait)
        try:
            if self._secrets.authenticate_cached(client_id, secret) is None:
                if not store:
                    raise _NeedsStore("the client secret is not in memory")
                self._secrets.authenticate(client_id, secret)
        except (AuthenticationError, NotFoundError) as exc:
            self._guard.failed(client_id, remote)
            reason = getattr(exc, "reason", str(exc))
            raise _refused(
                "invalid_client",
                "client authentication failed",
                basic=bool(basic),
                reason=reason,
            ) from None
        return client_id, params

    def _authenticate_certificate(
        self, params: dict[str, str], certificate: bytes, remote: str | None
    ) -> tuple[str, dict[str, str]]:
        """``tls_client_auth`` (RFC 8705 §2.1): the handshake verified the certificate."""
        client_id = params.get("client_id")
        if self._certificates is None or not client_id:
            self._guard.failed(client_id, remote)
            raise _refused("invalid_client", "client authentication failed")
        if not is_oauth_client(self.manifest, client_id) or not self._certificates.belongs_to(
            client_id, certificate
        ):
            self._guard.failed(client_id, remote)
            raise _refused("invalid_client", "client authentication failed", reason="certificate")
        return client_id, params

    def _authenticate_assertion(
        self, params: dict[str, str], remote: str | None
    ) -> tuple[str, dict[str, str]]:
        """``private_key_jwt``: the client named by a valid, unused assertion (RFC 7523 §3)."""
        if self._assertions is None:
            raise _refused("invalid_client", "private_key_jwt is not enabled")
        assertion = params.get("client_assertion")
        if params.get("client_assertion_type") != ASSERTION_TYPE or not assertion:
            raise _refused(
                "invalid_request",
                f"client_assertion_type must be {ASSERTION_TYPE} with a client_assertion",
            )
        client_id = ClientAssertions.claimed_client(assertion)
        if client_id is None:
            self._guard.failed(params.get("client_id"), remote)
            raise _refused("invalid_client", "client authentication failed")
        if "client_id" in params and params["client_id"] != client_id:
            raise _refused("invalid_request", "client_id differs from the assertion's sub")
        wait = self._guard.retry_after(client_id, remote)
        if wait is not None:
            raise _too_many(wait)
        if not is_oauth_client(self.manifest, client_id):
            self._guard.failed(client_id, remote)
            raise _refused("invalid_client", "client authentication failed")
        try:
            self._assertions.authenticate(client_id, assertion)
        except AuthenticationError as exc:
            self._guard.failed(client_id, remote)
            raise _refused(
                "invalid_client", "client authentication failed", reason=exc.reason
            ) from None
        return client_id, params

    def _audience(self, client_id: str, resources: Sequence[str]) -> str | list[str] | None:
        """RFC 8707: the requested resources, else the systems the client's routes reach."""
        reachable = self._grants.systems(client_id)
        if not resources:
            if not reachable:
                return self.issuer
            return sorted(reachable) if len(reachable) > 1 else next(iter(reachable))
        chosen: list[str] = []
        for resource in resources:
            value = resource.rstrip("/")
            if value != self.issuer and value not in reachable:
                return None
            if value not in chosen:
                chosen.append(value)
        return chosen[0] if len(chosen) == 1 else chosen

    def _grant(
        self,
        client_id: str,
        params: Mapping[str, str],
        jkt: str | None,
        resources: Sequence[str] = (),
        x5t: str | None = None,
    ) -> TokenResponse:
        grant = params.get("grant_type")
        if grant is None:
            raise _refused("invalid_request", "grant_type is required")
        if grant != "client_credentials":
            raise _refused("unsupported_grant_type", "only client_credentials is supported")
        granted = self._grants.scopes(client_id)
        requested = frozenset(params["scope"].split()) if params.get("scope") else granted
        if not requested or not requested <= granted:
            raise _refused("invalid_scope", "the requested scope is not granted to this client")
        audience = self._audience(client_id, resources)
        if audience is None:
            # RFC 8707 §2: a resource this server does not protect for this client.
            raise _refused(
                "invalid_target",
                "resource must be this gateway or a system this client's routes reach",
            )
        token = self._issuer.issue(client_id, requested, audience, jkt=jkt, x5t=x5t)
        body = {
            "access_token": token.access_token,
            # RFC 9449 §5.1: a bound token's type is DPoP.
            "token_type": "DPoP" if jkt else "Bearer",
            "expires_in": token.expires_in,
            "scope": token.scope,
        }
        return TokenResponse(200, body, dict(_NO_STORE), client=client_id, jti=token.jti)


def _too_many(wait: float) -> Refusal:
    return _refused(
        "slow_down",
        "too many failed attempts; retry later",
        headers={"Retry-After": str(max(1, int(wait)))},
    )


def metadata(endpoint: TokenEndpoint) -> dict[str, Any]:
    """Authorization server metadata (RFC 8414 §2) for this gateway."""
    issuer, manifest, methods = endpoint.issuer, endpoint.manifest, endpoint.auth_methods
    scopes = sorted({scope for role in manifest.roles.values() for scope in role.scopes})
    document: dict[str, Any] = {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth2/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "introspection_endpoint": f"{issuer}/oauth2/introspect",
        "revocation_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_methods_supported": methods,
        "grant_types_supported": ["client_credentials"],
        # No authorization endpoint: client credentials only.
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": methods,
        "scopes_supported": scopes,
    }
    if "private_key_jwt" in methods:
        document["token_endpoint_auth_signing_alg_values_supported"] = sorted(SIGNING_ALGORITHMS)
    if endpoint.dpop is not None:
        document["dpop_signing_alg_values_supported"] = sorted(endpoint.dpop.algorithms)
    return document


def _basic(header: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(header.split(" ", 1)[1].strip(), validate=True).decode()
    except (ValueError, IndexError):  # binascii.Error, UnicodeDecodeError, non-ASCII input
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id or not secret:
        return None
    # RFC 6749 §2.3.1: both parts are form-urlencoded before joining.
    return unquote(client_id), unquote(secret)


def _post(params: Mapping[str, str]) -> tuple[str, str] | None:
    client_id, secret = params.get("client_id"), params.get("client_secret")
    if not client_id or not secret:
        return None
    return client_id, secret
