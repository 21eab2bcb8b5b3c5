"""The reference token endpoint: Authlib's OAuth 2.0 server on aiohttp, client credentials, ES256.

Benchmark-only. A minimal authorization server as an Authlib user would write
it for a framework Authlib has no integration for: ``AuthorizationServer``
subclassed with ``create_oauth2_request`` / ``create_json_request`` /
``handle_response`` / ``send_signal``, Authlib's ``ClientCredentialsGrant``
(``client_secret_basic``), one client held in memory with a keyed hash of its
secret (HMAC-SHA256 under a random pepper, compared in constant time: the
same check the gateway makes, never the secret in clear), and Authlib's RFC 9068
``JWTBearerTokenGenerator`` signing ES256 with a key imported once at start.
Served like the gateway: aiohttp on uvloop, one process, no access log, the
gateway's own TLS listener context (``interlock.gateway.tls.server_context``).

Also serves its public key at ``/.well-known/jwks.json`` (the check of a first token).

Usage: python authlib_server.py --port P --cert PEM --key PEM --secret-file F --issuer URL
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import secrets
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    JsonPayload,
    JsonRequest,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc.jwk import ECKey

from interlock.gateway.tls import server_context

CLIENT_ID = "bench"
SCOPE = "orders.read"
LIFETIME = 600  # seconds, as the gateway's default token lifetime


PEPPER = secrets.token_bytes(32)


def secret_hash(secret: str) -> bytes:
    """HMAC-SHA256 of ``secret`` under the pepper: what a server stores instead of the secret."""
    return hmac.digest(PEPPER, secret.encode(), "sha256")


@dataclass(frozen=True)
class Client(ClientMixin):  # type: ignore[misc]
    """One confidential client: client credentials only, ``client_secret_basic`` only."""

    client_id: str
    secret_hash: bytes = field(repr=False)
    scope: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return self.scope
        allowed = set(self.scope.split())
        return " ".join(s for s in scope.split() if s in allowed)

    def check_client_secret(self, client_secret: str) -> bool:
        # As the gateway checks its secrets: the keyed hash, compared in constant time.
        return hmac.compare_digest(secret_hash(client_secret), self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic" and endpoint == "token"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, form: Mapping[str, list[str]]) -> None:
        self._datalist = dict(form)
        self._data = {name: values[0] for name, values in form.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class _Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, incoming: Incoming) -> None:
        super().__init__(incoming.method, incoming.url, headers=incoming.headers)
        self.payload = _Payload(incoming.form)

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data


class _JsonPayload(JsonPayload):  # type: ignore[misc]
    def __init__(self, body: bytes) -> None:
        self._body = body

    @property
    def data(self) -> Any:
        return json.loads(self._body or b"{}")


class _JsonRequest(JsonRequest):  # type: ignore[misc]
    def __init__(self, incoming: Incoming) -> None:
        super().__init__(incoming.method, incoming.url, incoming.headers)
        self.payload = _JsonPayload(incoming.body)


@dataclass(frozen=True)
class Incoming:
    """An aiohttp request with its body already read (Authlib's server is synchronous)."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    form: Mapping[str, list[str]]


class AiohttpAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """Authlib's authorization server bound to aiohttp (per Authlib's custom-framework hooks)."""

    def __init__(self, clients: Mapping[str, Client], jwks: dict[str, Any]) -> None:
        super().__init__(scopes_supported=[SCOPE])
        self._clients = clients
        self.jwks = jwks  # the public key set, for the benchmark's check of a first token

    def query_client(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """JWT access tokens are self-contained: nothing to store (as the gateway)."""

    def create_oauth2_request(self, request: Incoming) -> OAuth2Request:
        return _Request(request)

    def create_json_request(self, request: Incoming) -> JsonRequest:
        return _JsonRequest(request)

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> web.Response:
        payload = json.dumps(body).encode() if isinstance(body, dict) else body
        return web.Response(body=payload, status=status, headers=headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signal receivers in this server."""


class TokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]
    """RFC 9068 tokens signed ES256 with one key; audience = issuer, like the gateway's."""

    def __init__(self, issuer: str, key: ECKey) -> None:
        super().__init__(issuer, alg="ES256", expires_generator=LIFETIME)
        self._key = key

    def get_jwks(self) -> ECKey:
        return self._key  # imported once, not per token

    def get_audiences(self, client: Client, user: object, scope: str) -> str:
        return str(self.issuer)


def build(issuer: str, secret: str) -> AiohttpAuthorizationServer:
    """The authorization server with one client and an ES256 token generator."""
    key = ECKey.generate_key("P-256", private=True)
    key.ensure_kid()
    jwks = {"keys": [{**key.as_dict(private=False), "alg": "ES256", "use": "sig"}]}
    server = AiohttpAuthorizationServer(
        {CLIENT_ID: Client(CLIENT_ID, secret_hash(secret), SCOPE)}, jwks
    )
    server.register_grant(ClientCredentialsGrant)
    server.register_token_generator("default", TokenGenerator(issuer, key))
    return server


def application(server: AiohttpAuthorizationServer) -> web.Application:
    """``POST /oauth2/token``, and the JWKS for the first token's check."""

    async def token(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        form = await request.post()
        incoming = Incoming(
            request.method,
            str(request.url),
            request.headers,
            body,
            {name: [str(v) for v in form.getall(name)] for name in form},
        )
        response: web.StreamResponse = server.create_token_response(incoming)
        return response

    async def jwks(request: web.Request) -> web.Response:
        return web.json_response(server.jwks)

    app = web.Application()
    app.router.add_post("/oauth2/token", token)
    app.router.add_get("/.well-known/jwks.json", jwks)
    return app


async def _serve(args: argparse.Namespace) -> None:
    server = build(args.issuer, args.secret_file.read_text().strip())
    runner = web.AppRunner(application(server), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(
        runner,
        "127.0.0.1",
        args.port,
        ssl_context=server_context(args.cert, args.key),
        backlog=1024,
    )
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    """Parse arguments and serve until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--secret-file", type=Path, required=True)
    parser.add_argument("--issuer", required=True)
    uvloop.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
