"""Fetch secrets from an Interlock vault over HTTPS, as a client.

The client authenticates with its access token (pass ``InterlockAuth`` as
``auth``) or its certificate (pass ``cert=(certfile, keyfile)``); the vault's
access policy decides what it may read. Values are cached for the lease the
vault gives (``lease_seconds``, at most ``max_cache_seconds``), so a rotated
value arrives without a restart; during a rotation's overlap the previous
version keeps working, so a value cached a little longer is still good.

Example::

    from interlock.sdk import ClientCredentials, InterlockAuth
    from interlock.sdk.secrets import SecretsClient

    credentials = ClientCredentials(
        token_url, "order-sync", client_secret=..., verify=ca,
        scope="vault.read", resource="https://gateway.example",  # a token for the gateway
    )
    with SecretsClient("https://gateway.example", auth=InterlockAuth(credentials),
                       verify=ca) as vault:
        password = vault.get("erp/db-password").reveal()

TLS verification cannot be switched off and the URL must be ``https://``;
values never appear in ``repr``, errors or logs.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, NoReturn, Self
from urllib.parse import quote

import httpx

from interlock.errors import InterlockError
from interlock.outbound import Timeouts, outbound_client
from interlock.sdk.errors import InsecureTransportError
from interlock.sdk.tls import Verify, client_context

__all__ = ["SecretValue", "SecretsClient", "VaultError"]

_MAX_DETAIL: Final = 200


class VaultError(InterlockError):
    """The vault refused a request (``status``, its problem ``kind``) or could not be asked."""

    code = "vault_request_failed"

    def __init__(self, message: str, status: int | None = None, kind: str | None = None) -> None:
        """Describe the failure (never a value)."""
        super().__init__(message)
        self.status = status
        self.kind = kind


@dataclass(frozen=True, repr=False)
class SecretValue:
    """A secret's value and which version it is; ``repr`` never shows the value."""

    name: str
    version: int
    stage: str | None
    _value: bytes

    def reveal(self) -> bytes:
        """The value; call only where it is used."""
        return self._value

    def text(self) -> str:
        """The value as UTF-8 text."""
        return self._value.decode("utf-8")

    def __repr__(self) -> str:
        return f"SecretValue(name={self.name!r}, version={self.version}, value='***')"

    __str__ = __repr__

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("a SecretValue cannot be pickled")


class SecretsClient:
    """Reads (and writes) secrets the client is granted, with a lease-bound cache."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        verify: Verify = None,
        cert: tuple[str, str] | None = None,
        max_cache_seconds: float = 300.0,
        timeout: float = 10.0,
    ) -> None:
        """A client of the vault at ``base_url`` (the gateway's address)."""
        if not base_url.startswith("https://"):
            raise InsecureTransportError("the vault is reached over https:// only")
        if auth is None and cert is None:
            raise ValueError("authenticate with auth=InterlockAuth(...) or cert=(cert, key)")
        context = client_context(verify)
        if cert is not None:
            if context is verify:  # never change a context the caller owns
                raise ValueError("with cert=..., pass verify as a CA file, not an SSLContext")
            context.load_cert_chain(*cert)
        self._http = outbound_client(
            trust=context,
            timeouts=Timeouts.every(timeout),
            base_url=base_url.rstrip("/"),
            auth=auth,
        )
        self._max_cache = max_cache_seconds
        self._cache: dict[str, tuple[float, SecretValue]] = {}
        self._lock = threading.Lock()

    def get(
        self, name: str, *, version: int | None = None, stage: str | None = None
    ) -> SecretValue:
        """The value of ``name`` (current, or ``version``/``stage``), from cache while leased."""
        key = f"{name}|{version}|{stage}"
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and now < cached[0]:
            return cached[1]
        params: dict[str, str] = {}
        if version is not None:
            params["version"] = str(version)
        if stage is not None:
            params["stage"] = stage
        body = self._call("GET", _path(name), params=params)
        try:
            value = SecretValue(
                body["name"],
                int(body["version"]),
                body.get("stage"),
                base64.b64decode(body["value"], validate=True),
            )
            lease = min(float(body.get("lease_seconds", 0)), self._max_cache)
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise VaultError("the vault's answer is malformed") from None
        with self._lock:
            self._cache[key] = (now + lease, value)
        return value

    def list(self, prefix: str = "") -> list[Mapping[str, Any]]:
        """Names (with version, kind, last update) the client may list, under ``prefix``."""
        body = self._call("GET", "/v1/secrets", params={"prefix": prefix} if prefix else {})
        found = body.get("secrets")
        if not isinstance(found, list):
            raise VaultError("the vault's answer is malformed")
        return found

    def put(self, name: str, value: bytes, *, cas: int | None = None) -> int:
        """Store a new version (check-and-set with ``cas``); returns its number."""
        document: dict[str, Any] = {"value": base64.b64encode(value).decode("ascii")}
        if cas is not None:
            document["cas"] = cas
        body = self._call("PUT", _path(name), json=document)
        self.forget(name)
        return int(body["version"])

    def forget(self, name: str) -> None:
        """Drop cached values of ``name`` (e.g. after the upstream refused one)."""
        with self._lock:
            for key in [k for k in self._cache if k.split("|", 1)[0] == name]:
                del self._cache[key]

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise VaultError(f"the vault could not be reached ({type(exc).__name__})") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            detail = body.get("detail", "") if isinstance(body, dict) else ""
            kind = body.get("type", "").rpartition(":")[2] if isinstance(body, dict) else None
            text = "".join(c for c in str(detail) if c.isprintable())[:_MAX_DETAIL]
            raise VaultError(
                f"the vault refused the request (HTTP {response.status_code}): {text}",
                response.status_code,
                kind,
            )
        if not isinstance(body, dict):
            raise VaultError("the vault's answer is malformed")
        return body

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _path(name: str) -> str:
    return "/v1/secrets/" + quote(name, safe="/")
