"""A token endpoint and a protected resource on real TLS, programmable per test.

Client authentication (secrets, ``private_key_jwt`` through Interlock's own
:class:`ClientAssertions`) and DPoP proofs (through Interlock's own
:class:`DPoPVerifier`) are checked with the server-side code, so the SDK's
output is verified by the code that will verify it in production.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from interlock.config.manifest import Manifest
from interlock.crypto.jose import PublicKey
from interlock.crypto.keyfile import write_private_file
from interlock.crypto.pkix import (
    certificate_pem,
    issue_server_certificate,
    private_key_pem,
    self_signed_ca,
)
from interlock.errors import AuthenticationError, DPoPProofError
from interlock.oauth.client_assertion import ClientAssertions
from interlock.oauth.dpop import DPoPNonces, DPoPVerifier
from interlock.replay.seen import MemorySeen
from interlock.sdk import ClientCredentials

CLIENT_ID = "sdk-client"
SECRET = "sdk-secret-" + "x" * 32


@dataclass
class Seen:
    """One request the server received."""

    path: str
    headers: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)


class KeySource:
    """Registered public keys for ``private_key_jwt`` (kid -> (alg, key))."""

    manifest: Manifest  # part of the protocol; the fake needs none

    def __init__(self) -> None:
        """No keys yet."""
        self.keys: dict[str, tuple[str, PublicKey]] = {}

    def public_keys(self, client: str) -> Mapping[str, tuple[str, PublicKey]]:
        """The keys of ``client``."""
        return self.keys if client == CLIENT_ID else {}


class FakeServer:
    """Issues tokens at ``/token``; ``/resource`` answers 200 for a valid token, else 401."""

    def __init__(self, workdir: Path) -> None:
        """Make a CA and a server certificate for 127.0.0.1, and start serving."""
        ca, ca_key = self_signed_ca("SDK test CA", timedelta(hours=1))
        cert, key = issue_server_certificate(ca, ca_key, ["127.0.0.1"], timedelta(hours=1))
        self.ca_file = workdir / "ca.pem"
        self.ca_file.write_bytes(certificate_pem(ca))
        (workdir / "server.pem").write_bytes(certificate_pem(cert))
        write_private_file(workdir / "server.key", private_key_pem(key))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(workdir / "server.pem", workdir / "server.key")

        self.expires_in: Any = 600
        self.token_type: str | None = None  # None: Bearer, or DPoP with a proof
        self.token_delay = 0.0
        self.token_answer: tuple[int, bytes] | None = None  # a canned token response
        self.keys = KeySource()
        self.nonces: DPoPNonces | None = None
        self.dpop = DPoPVerifier(MemorySeen())
        self.token_requests: list[Seen] = []
        self.resource_requests: list[Seen] = []
        self.valid: dict[str, str | None] = {}  # token -> bound jkt
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        self.base = f"https://127.0.0.1:{self._server.server_address[1]}"
        self.token_url = f"{self.base}/token"
        self.resource = f"{self.base}/resource"
        # draft-ietf-oauth-rfc7523bis: an assertion's audience is the issuer identifier.
        self.issuer = self.base
        self.assertions = ClientAssertions(self.keys, MemorySeen(), self.issuer)

    def require_nonces(self) -> DPoPNonces:
        """From now on, DPoP proofs need a server nonce."""
        self.nonces = DPoPNonces(os.urandom(32))
        self.dpop = DPoPVerifier(MemorySeen(), nonces=self.nonces)
        return self.nonces

    def revoke_all(self) -> None:
        """Every token issued so far is refused from now on."""
        with self._lock:
            self.valid.clear()

    @property
    def fetches(self) -> int:
        """How many token requests arrived."""
        with self._lock:
            return len(self.token_requests)

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # -- the two endpoints ------------------------------------------------------------

    def token(self, seen: Seen, dpop: str | None) -> tuple[int, dict[str, str], bytes]:
        """Answer a token request."""
        with self._lock:
            self.token_requests.append(seen)
        if self.token_answer is not None:
            return self.token_answer[0], {}, self.token_answer[1]
        if not self._client_ok(seen):
            return _error(401, "invalid_client", "client authentication failed")
        jkt = None
        if dpop is not None:
            try:
                jkt = self.dpop.check(dpop, "POST", self.token_url).jkt
            except DPoPProofError as exc:
                extra = {"DPoP-Nonce": self.nonces.current()} if self.nonces else {}
                return _error(400, exc.error, exc.reason, extra)
        time.sleep(self.token_delay)
        token = f"tok-{secrets.token_urlsafe(12)}"
        with self._lock:
            self.valid[token] = jkt
        kind = self.token_type or ("DPoP" if jkt else "Bearer")
        body = {"access_token": token, "token_type": kind, "expires_in": self.expires_in}
        return 200, {"Cache-Control": "no-store"}, json.dumps(body).encode()

    def _client_ok(self, seen: Seen) -> bool:
        form = seen.form
        if "client_assertion" in form:
            try:
                self.assertions.authenticate(CLIENT_ID, form["client_assertion"])
            except AuthenticationError:
                return False
            return True
        basic = seen.headers.get("authorization", "")
        if basic.startswith("Basic "):
            client, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            return (unquote(client), unquote(secret)) == (CLIENT_ID, SECRET)
        return (form.get("client_id"), form.get("client_secret")) == (CLIENT_ID, SECRET)

    def protected(self, seen: Seen, method: str) -> tuple[int, dict[str, str], bytes]:
        """Answer a call to the resource."""
        with self._lock:
            self.resource_requests.append(seen)
            valid = dict(self.valid)
        scheme, _, token = seen.headers.get("authorization", "").partition(" ")
        if token not in valid:
            return 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, b"{}"
        jkt = valid[token]
        if jkt is not None or scheme == "DPoP":
            try:
                proof = self.dpop.check(
                    seen.headers.get("dpop", ""), method, self.base + seen.path, token
                )
            except DPoPProofError as exc:
                headers = {"WWW-Authenticate": f'DPoP error="{exc.error}"'}
                if self.nonces is not None:
                    headers["DPoP-Nonce"] = self.nonces.current()
                return 401, headers, b"{}"
            if scheme != "DPoP" or proof.jkt != jkt:
                return 401, {"WWW-Authenticate": 'DPoP error="invalid_token"'}, b"{}"
        return 200, {}, json.dumps({"token": token}).encode()


def _error(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"error": error, "error_description": description}).encode()
    return status, headers or {}, body


def _handler(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def _answer(self, method: str) -> None:
            body = self._body()
            headers = {name.lower(): value for name, value in self.headers.items()}
            if self.path.startswith("/token"):
                form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                status, extra, payload = server.token(
                    Seen(self.path, headers, form), self.headers.get("DPoP")
                )
            else:
                status, extra, payload = server.protected(Seen(self.path, headers), method)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def _body(self) -> bytes:
            # Read the whole body (chunked too): answering before it is read races the client.
            if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base's name)
            """Quiet."""

    return Handler


def credentials_for(server: FakeServer, **options: Any) -> ClientCredentials:
    """Credentials of the fake server's client, trusting its CA (a secret unless a key is given)."""
    if "private_key" not in options:
        options.setdefault("client_secret", SECRET)
    else:
        options.setdefault("issuer", server.issuer)  # its token URL is not /oauth2/token
    options.setdefault("verify", server.ca_file)
    return ClientCredentials(server.token_url, CLIENT_ID, **options)


class Clock:
    """Seconds since the epoch, moved by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        """Start at ``now``."""
        self.now = now

    def __call__(self) -> float:
        """The current time of this clock."""
        return self.now
