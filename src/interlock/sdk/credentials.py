"""A client's credentials for the client credentials grant, and its token cache.

:class:`ClientCredentials` checks its configuration up front (HTTPS token URL,
exactly one of a secret or a private key, a method that fits it, TLS that
verifies) and holds the secret in an :class:`interlock.secrets.Secret`, the
private key where nothing prints it: ``repr``, ``str`` and error messages never
show either, and the object refuses to be pickled.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Final, Literal, NoReturn, get_args
from urllib.parse import urlsplit

from authlib.oauth2.auth import ClientAuth  # type: ignore[import-untyped]

from interlock.sdk.rfc6749 import TokenKey, TokenRequests
from interlock.sdk.rfc7523 import (
    TOKEN_PATH,
    ClientKeyInput,
    ShortLivedPrivateKeyJWT,
    load_client_key,
)
from interlock.sdk.rfc9449 import DPoPKey, DPoPKeyInput
from interlock.sdk.tls import Verify, client_context
from interlock.sdk.tokens import AccessToken, TokenCache
from interlock.secret import Secret

__all__ = ["DEFAULT", "AuthMethod", "ClientCredentials", "UseDefault", "normalise_scope"]

AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt"]
_SECRET_METHODS: Final = frozenset({"client_secret_basic", "client_secret_post"})


class UseDefault:
    """Marker: "the value given to :class:`ClientCredentials`"."""

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = UseDefault()


class ClientCredentials:
    """One OAuth client of a token endpoint, and the access tokens it has obtained.

    Thread-safe and usable from several event loops; share one instance among
    all the auth objects of a client so they share its tokens.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        *,
        client_secret: str | None = None,
        private_key: ClientKeyInput | None = None,
        auth_method: AuthMethod | None = None,
        scope: str | Iterable[str] | None = None,
        resource: str | None = None,
        issuer: str | None = None,
        verify: Verify = None,
        dpop: bool = False,
        dpop_key: DPoPKeyInput | None = None,
        refresh_margin: float | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Describe the client; nothing is sent until a token is needed.

        ``token_url`` must be ``https://``. Give ``client_secret`` (methods
        ``client_secret_basic``, the default, or ``client_secret_post``) or
        ``private_key`` (``private_key_jwt``: a joserfc key, a private JWK or
        PEM; EC P-256, Ed25519 or RSA). ``scope`` and ``resource`` (RFC 8707)
        are the defaults for every token. ``issuer`` is the authorization
        server's issuer identifier, the sole audience of a ``private_key_jwt``
        assertion (draft-ietf-oauth-rfc7523bis); by default ``token_url``
        without Interlock's ``/oauth2/token``. ``verify``: a CA file path or an
        ``ssl.SSLContext`` that verifies; default the system trust store;
        ``False`` is refused. ``dpop=True`` binds tokens to an ES256 key
        (``dpop_key``, or one generated now). Tokens are renewed
        ``refresh_margin`` seconds before they expire (default
        ``min(30, lifetime / 10)``). ``clock`` returns seconds since the epoch.
        """
        _check_url(token_url)
        if not client_id:
            raise ValueError("client_id is required")
        if (client_secret is None) == (private_key is None):
            raise ValueError("give exactly one of client_secret and private_key")
        if refresh_margin is not None and refresh_margin < 0:
            raise ValueError("refresh_margin must not be negative")
        self.token_url = token_url
        self.client_id = client_id
        if issuer is not None:
            _check_url(issuer)
        self.issuer = issuer or _issuer_of(token_url)
        self.auth_method: AuthMethod = auth_method or (
            "client_secret_basic" if client_secret is not None else "private_key_jwt"
        )
        if self.auth_method not in get_args(AuthMethod):
            raise ValueError(f"unsupported auth_method {self.auth_method!r}")
        self.scope = normalise_scope(scope)
        self.resource = resource
        self.dpop = DPoPKey(dpop_key, clock=clock) if dpop or dpop_key is not None else None
        context = client_context(verify)
        if client_secret is not None:
            authenticator, redact = self._secret_auth(client_secret)
        else:
            authenticator, redact = self._key_auth(private_key), ()
        requests = TokenRequests(token_url, authenticator, self.dpop, redact)
        self.tokens = TokenCache(
            requests, context, timeout=timeout, clock=clock, refresh_margin=refresh_margin
        )

    def _secret_auth(self, client_secret: str) -> tuple[object, tuple[str, ...]]:
        if self.auth_method not in _SECRET_METHODS:
            raise ValueError(f"{self.auth_method} does not use a client_secret")
        if not client_secret:
            raise ValueError("client_secret must not be empty")
        self._secret = Secret(client_secret.encode())
        return _SecretAuth(self.client_id, self._secret, self.auth_method), (client_secret,)

    def _key_auth(self, private_key: ClientKeyInput | None) -> object:
        if self.auth_method != "private_key_jwt" or private_key is None:
            raise ValueError("a private_key is used with auth_method='private_key_jwt' only")
        if self.issuer is None:
            raise ValueError(
                f"give issuer= (the authorization server's issuer identifier): the token URL "
                f"does not end in {TOKEN_PATH}, and a private_key_jwt assertion is for the "
                "issuer alone"
            )
        key, alg = load_client_key(private_key)
        # Authlib's ClientAuth calls its key "client_secret"; it never leaves this object.
        return ClientAuth(self.client_id, key, ShortLivedPrivateKeyJWT(self.issuer, alg, key.kid))

    def key(
        self,
        scope: str | Iterable[str] | UseDefault | None = DEFAULT,
        resource: str | UseDefault | None = DEFAULT,
    ) -> TokenKey:
        """The cache key for ``scope`` and ``resource`` (default: this client's own)."""
        return TokenKey(
            self.scope if isinstance(scope, UseDefault) else normalise_scope(scope),
            self.resource if isinstance(resource, UseDefault) else resource,
        )

    def token(self, key: TokenKey | None = None) -> AccessToken:
        """A valid access token (cached, or fetched now); blocks."""
        return self.tokens.get(key or self.key())

    async def atoken(self, key: TokenKey | None = None) -> AccessToken:
        """A valid access token (cached, or fetched now), for coroutines."""
        return await self.tokens.aget(key or self.key())

    def __repr__(self) -> str:
        return (
            f"ClientCredentials(token_url={self.token_url!r}, client_id={self.client_id!r}, "
            f"auth_method={self.auth_method!r}, scope={self.scope!r}, dpop={self.dpop is not None})"
        )

    __str__ = __repr__

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("ClientCredentials cannot be pickled")


class _SecretAuth(ClientAuth):  # type: ignore[misc]  # Authlib is untyped
    """Authlib's ``ClientAuth``, reading the secret from a :class:`Secret` when it is used."""

    def __init__(self, client_id: str, secret: Secret, method: str) -> None:
        super().__init__(client_id, None, method)
        self._secret = secret

    @property
    def client_secret(self) -> str:
        """The secret, revealed only while a request is being authenticated."""
        return self._secret.reveal().decode()

    @client_secret.setter
    def client_secret(self, value: object) -> None:
        # Authlib's __init__ assigns the attribute; the value lives in the Secret.
        pass

    def __repr__(self) -> str:
        return f"ClientAuth(client_id={self.client_id!r}, secret=***)"


def normalise_scope(scope: str | Iterable[str] | None) -> str | None:
    """Scopes as one space-separated string, sorted and without duplicates (RFC 6749 §3.3)."""
    if scope is None:
        return None
    names = scope.split() if isinstance(scope, str) else [str(name) for name in scope]
    return " ".join(sorted(set(names))) or None


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("token_url must be an https:// URL")
    if parts.fragment or parts.username or parts.password:
        raise ValueError("token_url must not carry a fragment or credentials")


def _issuer_of(token_url: str) -> str | None:
    """Interlock's issuer, from its token endpoint URL (``<issuer>/oauth2/token``)."""
    return token_url.removesuffix(TOKEN_PATH) if token_url.endswith(TOKEN_PATH) else None
