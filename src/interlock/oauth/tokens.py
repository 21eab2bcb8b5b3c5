"""RFC 9068 access tokens: issued for client credentials, verified at the gateway."""

from __future__ import annotations

import binascii
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

from joserfc.util import urlsafe_b64decode

from interlock.config.manifest import Manifest
from interlock.crypto.jose import (
    SIGNING_ALGORITHMS,
    PublicKey,
    import_public_jwk,
    json_object,
    sign_compact,
    verify_chosen,
)
from interlock.errors import InvalidTokenError
from interlock.identity.clients import is_oauth_client
from interlock.identity.grants import Grants, Principal
from interlock.oauth.keysets import Keys, KeySet
from interlock.oauth.lifetimes import MAX_LEEWAY, MAX_LIFETIME
from interlock.oauth.revoked import RevokedTokens
from interlock.oauth.signing_keys import SigningKeys

__all__ = [
    "DEFAULT_LIFETIME",
    "AccessTokenVerifier",
    "IssuedToken",
    "IssuerPolicy",
    "TokenIssuer",
]

DEFAULT_LIFETIME: Final = timedelta(minutes=10)
LEEWAY: Final = timedelta(seconds=60)
_TYP: Final = "at+jwt"
_HEADER: Final = MappingProxyType({"typ": _TYP})
# One encoder for every token: json.dumps builds a new one per call with these separators.
_COMPACT_JSON: Final = json.JSONEncoder(separators=(",", ":"))
_REFUSED: Final = "the token is invalid"


@dataclass(frozen=True)
class IssuedToken:
    """A token response's content (RFC 6749 §5.1)."""

    access_token: str = field(repr=False)  # a bearer credential: never in a repr or a log
    expires_in: int
    scope: str
    jti: str = ""  # the token's id (RFC 7519 §4.1.7): for the audit trail, not a credential


class TokenIssuer:
    """Signs access tokens with the current signing key."""

    def __init__(
        self,
        keys: SigningKeys,
        issuer: str,
        lifetime: timedelta = DEFAULT_LIFETIME,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``issuer`` is the gateway's base URL; tokens live ``lifetime`` (at most 1 h)."""
        if not timedelta(0) < lifetime <= MAX_LIFETIME:
            raise ValueError("an access token lives more than 0 s and at most 1 hour")
        self._keys = keys
        self.issuer = issuer
        self._seconds = int(lifetime.total_seconds())
        self._now = now

    def ready(self) -> bool:
        """Whether :meth:`issue` can sign without reading the store."""
        return self._keys.in_memory()

    def issue(
        self,
        client: str,
        scopes: frozenset[str],
        audience: str | list[str],
        *,
        jkt: str | None = None,
        x5t: str | None = None,
    ) -> IssuedToken:
        """An RFC 9068 §2.2 token for ``client`` with ``scopes`` for ``audience``.

        With ``jkt`` the token is bound to that DPoP key (RFC 9449 §6.1, ``cnf.jkt``);
        with ``x5t`` to that client certificate (RFC 8705 §3.1, ``cnf.x5t#S256``).
        """
        signer = self._keys.signer()
        issued_at = int(self._now().timestamp())
        scope = " ".join(sorted(scopes))
        jti = secrets.token_urlsafe(16)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": client,
            "aud": audience,
            "client_id": client,
            "scope": scope,
            "iat": issued_at,
            "exp": issued_at + self._seconds,
            "jti": jti,
        }
        if jkt is not None or x5t is not None:
            confirmation = {k: v for k, v in (("jkt", jkt), ("x5t#S256", x5t)) if v is not None}
            claims["cnf"] = confirmation
        payload = _COMPACT_JSON.encode(claims).encode()
        token = sign_compact(payload, signer.key, signer.alg, _HEADER)
        return IssuedToken(token, self._seconds, scope, jti)


@dataclass(frozen=True)
class IssuerPolicy:
    """What the gateway accepts from one issuer (RFC 8725 §3.1, §3.8, §3.11; RFC 9068 §4)."""

    issuer: str
    keys: KeySet
    audiences: frozenset[str]
    algorithms: frozenset[str]
    token_types: frozenset[str] = frozenset({_TYP})
    # The claims naming the client, first present wins (Keycloak: azp, Entra ID: appid).
    client_claims: tuple[str, ...] = ("client_id",)
    # External client id -> manifest client; ``None``: the ids are manifest names (ours).
    clients: Mapping[str, str] | None = None
    # Our own tokens: sub must equal client_id, and the revocation list applies.
    ours: bool = False


class AccessTokenVerifier:
    """Checks access tokens: signature by kid, then every RFC 9068 §4 / RFC 8725 rule.

    Verified tokens are remembered in a bounded cache keyed by the SHA-256 of
    the token (the cache never holds a usable token), until the token expires;
    a hit still consults the revocation mirror, so a repeated token costs a
    hash and two lookups (:meth:`verify_cached`).
    """

    def __init__(
        self,
        keys: SigningKeys,
        issuer: str,
        manifest: Manifest,
        *,
        now: Callable[[], datetime] | None = None,
        refresh_seconds: float = 5.0,
        revoked: RevokedTokens | None = None,
        cache_size: int = 10_000,
        leeway: timedelta = LEEWAY,
        trusted: Sequence[IssuerPolicy] = (),
    ) -> None:
        """Verify tokens of ``issuer`` (ours, signed with ``keys``) and of ``trusted`` issuers."""
        if not timedelta(0) <= leeway <= MAX_LEEWAY:
            raise ValueError("clock leeway is between 0 and 5 minutes")
        self.revoked = revoked
        self.issuer = issuer
        self._grants = Grants(manifest)
        self._now = now or (lambda: datetime.now(UTC))
        self._clock: Callable[[], float] = (lambda: now().timestamp()) if now else time.time
        self._leeway = leeway.total_seconds()
        self._ours = IssuerPolicy(
            issuer,
            KeySet(_our_keys(keys), max_age=60.0, min_refresh=refresh_seconds, name="ours"),
            frozenset({issuer}),
            SIGNING_ALGORITHMS,
            ours=True,
        )
        self._by_issuer: dict[str, IssuerPolicy] = {}
        self._set_ours()
        self.trusted = trusted
        self._cache_size = cache_size
        # sha256(token) -> (principal, exp, jti if ours, iat)
        self._cache: dict[bytes, tuple[Principal, float, str | None, float]] = {}
        self._cache_lock = threading.Lock()

    @property
    def trusted(self) -> Sequence[IssuerPolicy]:
        """The external issuers whose tokens are accepted."""
        return tuple(self._by_issuer[name] for name in self._by_issuer if name != self.issuer)

    @trusted.setter
    def trusted(self, policies: Sequence[IssuerPolicy]) -> None:
        by_issuer = {policy.issuer: policy for policy in policies}
        by_issuer[self.issuer] = self._ours
        self._by_issuer = by_issuer
        self._cache = {}

    @property
    def manifest(self) -> Manifest:
        """The manifest clients and grants come from."""
        return self._grants.manifest

    @manifest.setter
    def manifest(self, manifest: Manifest) -> None:
        self._grants = Grants(manifest)
        self._set_ours()
        self._cache = {}  # grants may have changed

    def _set_ours(self) -> None:
        # Our tokens are for the gateway as a whole (aud = issuer) or for some of the
        # manifest's systems (RFC 8707 resource indicators: their URLs).
        self._ours = replace(self._ours, audiences=self._grants.system_urls | {self.issuer})
        self.trusted = self.trusted

    def verify_cached(self, token: str) -> Principal | None:
        """The principal of a token verified before and still valid, or ``None`` (no I/O)."""
        entry = self._cache.get(hashlib.sha256(token.encode()).digest())
        if entry is None:
            return None
        principal, expires, jti, issued_at = entry
        if self._clock() >= expires:
            return None
        if (
            self.revoked is not None
            and self.revoked.known(jti, principal.client, issued_at) is not False
        ):
            return None  # revoked, or the mirror is stale: take the full path
        return principal

    def verify(self, token: str) -> Principal:
        """The client behind a valid, unrevoked token; :class:`InvalidTokenError` otherwise."""
        claims, policy, external, accepted = self._checked(token)
        grants = self._grants
        ours = policy.ours
        client = _manifest_client(grants, external, policy)
        if (
            not ours
            and self.revoked is not None
            and self.revoked.contains(None, client, claims["iat"])
        ):
            # The kill switch ends what a trusted issuer gave the client before it, too.
            raise InvalidTokenError(_REFUSED, f"client {client} revoked after the token was issued")
        jkt = x5t = None
        cnf = claims.get("cnf")
        if cnf is not None:
            if isinstance(cnf, dict):
                jkt, x5t = cnf.get("jkt"), cnf.get("x5t#S256")
            if not isinstance(jkt, str) and not isinstance(x5t, str):
                # A confirmation method we cannot check must not be ignored (RFC 7800 §3.1).
                raise InvalidTokenError(_REFUSED, "unsupported cnf confirmation method")
        jti = claims.get("jti")
        label = f"jwt {jti}" if ours else f"jwt {policy.issuer} {jti or '-'}"
        audiences = None  # RFC 8707: any system the client's grants allow
        for_gateway = ours and self.issuer in accepted
        if ours and not for_gateway:
            audiences = accepted & grants.systems(client)
        principal = Principal(
            client,
            _scopes(claims) & grants.scopes(client),
            label,
            jkt if isinstance(jkt, str) else None,
            audiences,
            "oauth2",
            x5t if isinstance(x5t, str) else None,
            for_gateway,
        )
        if self._cache_size > 0:
            self._remember(
                token,
                principal,
                float(claims["exp"]),
                jti if policy.ours else None,
                float(claims["iat"]),
            )
        return principal

    def claims(self, token: str) -> dict[str, Any]:
        """The claims of one of *our* tokens that passes every check (for RFC 7009 / 7662).

        The checks are :meth:`verify`'s: the client must still be in the manifest
        with ``oauth2``, and ``scope`` is narrowed to what its grants allow now.
        """
        claims, policy, external, _ = self._checked(token)
        if not policy.ours:
            raise InvalidTokenError(_REFUSED, "not issued by this server")
        grants = self._grants
        client = _manifest_client(grants, external, policy)
        claims["scope"] = " ".join(sorted(_scopes(claims) & grants.scopes(client)))
        return claims

    def _remember(
        self, token: str, principal: Principal, exp: float, jti: str | None, iat: float
    ) -> None:
        digest = hashlib.sha256(token.encode()).digest()
        with self._cache_lock:
            cache = self._cache
            while len(cache) >= self._cache_size:
                del cache[next(iter(cache))]  # oldest first
            cache[digest] = (principal, exp, jti, iat)

    def _checked(self, token: str) -> tuple[dict[str, Any], IssuerPolicy, str, frozenset[str]]:
        """A token's claims, issuer policy, client claim and accepted audiences; all checked."""
        # The signature first, with the key its kid names (split and header read once).
        header, payload, policy = verify_chosen(token, self._key_for)
        typ = header.get("typ")
        if not isinstance(typ, str) or typ not in policy.token_types:
            # RFC 9068 §4 / RFC 8725 §3.11: explicit typing keeps other JWTs out.
            raise InvalidTokenError(_REFUSED, f"typ is {typ!r}, not one of the accepted types")
        claims = json_object(payload)
        if claims.get("iss") != policy.issuer:
            raise InvalidTokenError(_REFUSED, "wrong issuer")
        audiences = _audiences(claims.get("aud"), policy.audiences)
        if not audiences:
            raise InvalidTokenError(_REFUSED, "wrong audience")
        self._check_times(claims)
        client = None
        for name in policy.client_claims:  # the first present wins
            if name in claims:
                client = claims[name]
                break
        if not isinstance(client, str) or not client:
            raise InvalidTokenError(_REFUSED, "no client claim")
        jti = claims.get("jti")
        if policy.ours:
            if claims.get("sub") != client:
                raise InvalidTokenError(_REFUSED, "client_id different from sub")
            if not isinstance(jti, str) or not jti:
                raise InvalidTokenError(_REFUSED, "missing jti")
            if self.revoked is not None and self.revoked.contains(jti, client, claims["iat"]):
                raise InvalidTokenError(_REFUSED, f"token {jti} is revoked")
        return claims, policy, client, audiences

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        exp = claims.get("exp")
        if not isinstance(exp, int):
            raise InvalidTokenError(_REFUSED, "missing or non-integer exp")
        iat = claims.get("iat")
        if not isinstance(iat, int):
            raise InvalidTokenError(_REFUSED, "missing or non-integer iat")
        now = self._clock()
        if exp <= now - self._leeway:
            raise InvalidTokenError(_REFUSED, "expired")
        if iat > now + self._leeway:
            raise InvalidTokenError(_REFUSED, "issued in the future")
        nbf = claims.get("nbf")
        if nbf is not None and (not isinstance(nbf, int) or nbf > now + self._leeway):
            raise InvalidTokenError(_REFUSED, "not yet valid")

    def _key_for(
        self, header: Mapping[str, Any], encoded_payload: str
    ) -> tuple[PublicKey, frozenset[str], IssuerPolicy]:
        """The key the header's ``kid`` names, the algorithms it may verify, its issuer's policy."""
        kid = header.get("kid")
        if not isinstance(kid, str):
            # A list or object is not a key id (it used to reach a dict lookup: a 500).
            raise InvalidTokenError(_REFUSED, "kid missing or not a string")
        ours = self._ours
        keys = ours.keys.current()
        policy = ours if kid in keys else self._policy_for(encoded_payload, kid)
        if policy is not ours:
            keys = policy.keys.current()
        if kid not in keys:
            # A kid we have not seen: the key set may have rotated; look again (rate-limited).
            keys = policy.keys.after_unknown_kid()
        entry = keys.get(kid)
        if entry is None:
            raise InvalidTokenError(_REFUSED, "unknown kid")
        alg, key = entry
        # A JWK that names its algorithm is used for that algorithm only (RFC 7517 §4.4).
        return key, policy.algorithms if alg is None else policy.algorithms & {alg}, policy

    def _policy_for(self, encoded_payload: str, kid: str) -> IssuerPolicy:
        for policy in self._by_issuer.values():
            if kid in policy.keys.cached():
                return policy
        # Unknown kid everywhere: the (unverified) iss says whose keys to look at again.
        try:
            iss = json_object(urlsafe_b64decode(encoded_payload.encode("ascii"))).get("iss")
        except (binascii.Error, UnicodeEncodeError):
            raise InvalidTokenError(_REFUSED, "not a compact JWS") from None
        found = self._by_issuer.get(iss) if isinstance(iss, str) else None
        if found is None:
            raise InvalidTokenError(_REFUSED, "unknown issuer")
        return found


def _manifest_client(grants: Grants, external: str, policy: IssuerPolicy) -> str:
    """The manifest client a checked client claim names; refused unless it may use OAuth 2.0."""
    client = external if policy.clients is None else policy.clients.get(external, "")
    if not is_oauth_client(grants.manifest, client):
        raise InvalidTokenError(_REFUSED, "unknown client or client without oauth2")
    return client


def _our_keys(keys: SigningKeys) -> Callable[[], Keys]:
    def load() -> Keys:
        return {
            str(jwk["kid"]): (str(jwk["alg"]), import_public_jwk(jwk))
            for jwk in keys.jwks()["keys"]
        }

    return load


def _audiences(audience: object, accepted: frozenset[str]) -> frozenset[str]:
    # RFC 7519 §4.1.3: one string or an array of strings; what we accept of them.
    if isinstance(audience, str):
        return frozenset((audience,)) if audience in accepted else frozenset()
    if isinstance(audience, list):
        return accepted.intersection([a for a in audience if isinstance(a, str)])
    return frozenset()


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    # RFC 9068 §2.2.3 "scope" (space-separated); Entra ID's "scp"/"roles" as a fallback.
    for name in ("scope", "scp", "roles"):
        value = claims.get(name)
        if isinstance(value, str):
            return frozenset(value.split())
        if isinstance(value, list):
            return frozenset(v for v in value if isinstance(v, str))
    return frozenset()
