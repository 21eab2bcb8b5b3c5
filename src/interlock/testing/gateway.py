"""A real gateway over real TLS in a background event loop, with upstream processes.

``running_gateway(workdir)`` initialises a deployment in ``workdir``, starts the
sample ERP as a separate process (``python -m interlock.testing.sample_erp``) with
a certificate from the deployment's local CA, a "rogue" upstream with a
certificate from a CA nobody trusts, and the gateway on ``MANIFEST``; it yields an
``Env``. Tests talk to the gateway with ``http.client`` (``Env.request``,
verifying against the local CA) or raw TLS sockets for hostile input
(``Env.raw``), and sign requests as a partner would with ``Signer``. The
sample ERP's privacy webhook trusts the deployment's token-signing keys (a
JWKS file written before it starts, ``interlock-jwks.json`` in the workdir).

Nothing here imports pytest: a fixture wraps ``running_gateway`` in the scope it
needs (the gateway and SDK suites each share one per package).
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import io
import json
import logging
import os
import secrets
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import structlog
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver
from http_message_signatures.algorithms import ED25519, HMAC_SHA256, HTTPSignatureAlgorithm
from joserfc.jwk import OKPKey
from sqlalchemy import create_engine, select

from interlock.actors import Operator
from interlock.audit.schema import BODIES
from interlock.audit.sink import MemorySink
from interlock.config.loader import load_manifest
from interlock.config.settings import Settings
from interlock.config.units import parse_rate
from interlock.crypto.keyfile import write_private_file
from interlock.crypto.pkix import (
    certificate_pem,
    issue_server_certificate,
    private_key_pem,
    self_signed_ca,
)
from interlock.gateway.privacy_runtime import PrivacyRuntime
from interlock.gateway.server import ListenerConfig, RunningGateway, start_gateway
from interlock.gateway.upstream import UpstreamLimits
from interlock.identity.apikeys import ApiKeys
from interlock.identity.client_keys import ClientKeys
from interlock.identity.client_secrets import ClientSecrets
from interlock.logs import configure_logging
from interlock.oauth.signing_keys import SigningKeys
from interlock.pki import ensure_local_ca
from interlock.replay.signatures import SignedMessage
from interlock.secrets.vault import Vault
from interlock.store import Deployment, initialise

__all__ = [
    "MANIFEST",
    "Env",
    "Running",
    "Signer",
    "Upstream",
    "lines",
    "running_gateway",
    "start",
    "stop",
]

#: Who writes the harness's secrets.
HARNESS: Final = Operator("admin:harness")

MANIFEST = """\
version: 1
organisation:
  controller: {{name: Interlock test harness, contact: privacy@harness.test, country: DE}}
systems:
  erp: {{url: "https://localhost:{erp_port}", location: DE, ca: "pki:internal", credentials: "secret://erp/api-key"}}
  rogue: {{url: "https://localhost:{rogue_port}", location: DE, ca: "pki:internal", credentials: "secret://erp/api-key"}}
roles:
  order-reader: {{scopes: [orders.read]}}
  order-writer: {{scopes: [orders.write]}}
  vault-user: {{scopes: [vault.read, vault.write]}}
  privacy-admin: {{scopes: [privacy.admin]}}
clients:
  order-sync: {{auth: [api_key], roles: [order-reader, order-writer]}}
  oauth-only: {{auth: [oauth2], roles: [order-reader, vault-user]}}
  cert-sync: {{auth: [mtls, oauth2], roles: [order-reader, vault-user]}}
  every-way: {{auth: [api_key, oauth2, mtls], roles: [order-reader, order-writer, vault-user]}}
  introspector: {{auth: [oauth2], introspection: all}}
  crm-sync: {{auth: [api_key], roles: [order-reader]}}
  privacy-desk: {{auth: [api_key, oauth2], roles: [privacy-admin]}}
# Held by the clients of two integrations on purpose: crm-sync's key must still not
# reach order-sync's routes (a route belongs to its integration).
shared_scopes: [orders.read]
rules:
  product_sellable:
    database: "secret://catalogue/readonly-url"
    view: sellable_products
    column: sku
    value: "body:lines[].sku"
    message: the product is not sellable
  sku_sellable:
    database: "secret://catalogue/readonly-url"
    view: sellable_products
    column: sku
    value: "body:sku"
    message: the product is not sellable
  note_sku_sellable:
    database: "secret://catalogue/readonly-url"
    view: sellable_products
    column: sku
    value: "body:note_sku"
    optional: true
    message: the product is not sellable
integrations:
  order-sync:
    source: erp
    target: rogue
    client: order-sync
    callers: [oauth-only, cert-sync, every-way]
    purpose: Test order sync
    legal_basis: contract
    data_categories: [user.contact.email]
    retention: 30d
    routes:
      - {{method: GET, path: "/orders/{{id}}", upstream: erp, upstream_path: "/sap/opu/odata/orders/{{id}}", scope: orders.read}}
      - {{method: GET, path: "/orders", upstream: erp, upstream_path: "/sap/opu/odata/orders", scope: orders.read}}
      - {{method: POST, path: "/orders/{{id}}/notes", upstream: erp, upstream_path: "/echo/notes/{{id}}", scope: orders.write}}
      - {{method: POST, path: "/orders/{{id}}/payments", upstream: erp, upstream_path: "/echo/payments/{{id}}", scope: orders.write, idempotency: required}}
      - {{method: GET, path: "/echo/{{value}}", upstream: erp, scope: orders.read, params: {{value: {{pattern: ".{{1,256}}"}}}}}}
      - {{method: POST, path: "/signed/orders/{{id}}", upstream: erp, upstream_path: "/echo/signed/{{id}}", scope: orders.write, replay: {{window: 1m}}}}
      - {{method: GET, path: "/signed/orders/{{id}}", upstream: erp, upstream_path: "/sap/opu/odata/orders/{{id}}", scope: orders.read, replay: {{window: 1m, nonce: optional}}}}
      - {{method: GET, path: "/slow", upstream: erp, upstream_path: "/sleep/3", scope: orders.read}}
      - {{method: GET, path: "/moved", upstream: erp, upstream_path: "/redirect", scope: orders.read}}
      - {{method: GET, path: "/big/{{size}}", upstream: erp, scope: orders.read}}
      - {{method: GET, path: "/rogue/{{id}}", upstream: rogue, upstream_path: "/sap/opu/odata/orders/{{id}}", scope: orders.read}}
      - {{method: GET, path: "/limited/{{id}}", upstream: erp, upstream_path: "/sap/opu/odata/orders/{{id}}", scope: orders.read, rate_limit: {{per_client: 3/hour, per_ip: 1000/hour}}}}
      # Header allow-lists and withheld upstream errors (docs/gateway.md).
      - {{method: GET, path: "/headers/echo/{{value}}", upstream: erp, upstream_path: "/echo/{{value}}", scope: orders.read, forward_headers: [X-Tenant]}}
      - {{method: GET, path: "/headers/leaky", upstream: erp, upstream_path: "/leaky", scope: orders.read}}
      - {{method: GET, path: "/headers/leaky-extra", upstream: erp, upstream_path: "/leaky", scope: orders.read, return_headers: [X-Total-Count]}}
      - {{method: GET, path: "/fail/{{status}}", upstream: erp, scope: orders.read}}
      - {{method: GET, path: "/fail-minimised/{{status}}", upstream: erp, upstream_path: "/fail/{{status}}", scope: orders.read, response_fields: [id]}}
  validated:
    source: erp
    target: erp
    client: order-sync
    callers: [oauth-only, cert-sync, every-way]
    purpose: Test boundary validation
    legal_basis: contract
    retention: 30d
    routes:
      - method: POST
        path: /v/orders
        upstream: erp
        upstream_path: /echo/v/orders
        scope: orders.write
        max_body: 64KiB
        rules: [order_total_matches_lines, product_sellable]
        request_schema:
          type: object
          required: [customer_id, lines, total]
          additionalProperties: false
          properties:
            customer_id: {{type: string, pattern: "^C-[0-9]{{4}}$"}}
            delivery_date: {{type: string, format: date}}
            total: {{type: number, minimum: 0}}
            lines:
              type: array
              minItems: 1
              maxItems: 100
              items:
                type: object
                required: [sku, quantity, unit_price]
                additionalProperties: false
                properties:
                  sku: {{type: string, pattern: "^SKU-[0-9]+$"}}
                  quantity: {{type: integer, minimum: 1, maximum: 1000}}
                  unit_price: {{type: number, minimum: 0}}
      - method: GET
        path: /v/orders/{{id}}
        upstream: erp
        upstream_path: /sap/opu/odata/orders/{{id}}
        scope: orders.read
        params: {{id: {{type: integer, minimum: 1000, maximum: 9999}}}}
        query:
          status: {{enum: [open, shipped, confirmed]}}
          limit: {{type: integer, minimum: 1, maximum: 100}}
          since: {{format: date}}
        response_fields: [id, status, customer.email]
      - method: POST
        path: /v/forward
        upstream: erp
        upstream_path: /echo/v/forward
        scope: orders.write
        request_fields: [order_id, "lines[].sku"]
      - method: POST
        path: /v/xml
        upstream: erp
        upstream_path: /echo/v/xml
        scope: orders.write
        xml: {{max_depth: 16}}
      - method: POST
        path: /v/csv
        upstream: erp
        upstream_path: /echo/v/csv
        scope: orders.write
        csv: {{max_rows: 5}}
      - method: POST
        path: /v/rule
        upstream: erp
        upstream_path: /echo/v/rule
        scope: orders.write
        rules: [sku_sellable, note_sku_sellable]
      - method: GET
        path: /v/blob/{{size}}
        upstream: erp
        upstream_path: /big/{{size}}
        scope: orders.read
        response_fields: [id]
  cert-sync:
    source: erp
    target: erp
    client: cert-sync
    callers: [order-sync, oauth-only, every-way]
    purpose: Test mutual TLS
    legal_basis: contract
    retention: 30d
    routes:
      - {{method: GET, path: "/mtls/orders/{{id}}", upstream: erp, upstream_path: "/sap/opu/odata/orders/{{id}}", scope: orders.read, auth: [mtls]}}
  crm-feed:
    source: erp
    target: erp
    client: crm-sync
    purpose: Test route ownership
    legal_basis: contract
    retention: 30d
    routes:
      - {{method: GET, path: "/crm/orders/{{id}}", upstream: erp, upstream_path: "/sap/opu/odata/orders/{{id}}", scope: orders.read}}
"""


@dataclass
class Upstream:
    """An upstream process."""

    process: subprocess.Popen[str]
    port: int


@dataclass
class Env:
    """Everything a gateway test needs."""

    deployment: Deployment
    gateway: RunningGateway
    keys: ApiKeys
    ca_file: Path
    erp_token: str
    logs: io.StringIO
    loop: asyncio.AbstractEventLoop
    manifest_path: Path
    issued_tokens: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        """The gateway's port."""
        return self.gateway.port

    @contextmanager
    def client_secret(self, client: str = "oauth-only") -> Iterator[str]:
        """A fresh OAuth client secret, revoked on exit (and watched for in the logs)."""
        secrets = ClientSecrets(
            self.deployment.engine, self.deployment.keyring, self.gateway.gateway.manifest
        )
        secret_id, value = secrets.create(client)
        self.issued_tokens.append(value)
        try:
            yield value
        finally:
            secrets.revoke(secret_id)

    @staticmethod
    def basic(secret: str, client: str = "oauth-only") -> dict[str, str]:
        """An ``Authorization: Basic`` header for ``client``."""
        raw = base64.b64encode(f"{client}:{secret}".encode()).decode()
        return {"Authorization": f"Basic {raw}"}

    def key(
        self, scopes: list[str] | None = None, lifetime: timedelta | None = None
    ) -> tuple[str, str]:
        """Issue a key for order-sync; returns (token, key id)."""
        args: dict[str, Any] = {} if lifetime is None else {"lifetime": lifetime}
        issued = self.keys.create("order-sync", scopes, **args)
        self.issued_tokens.append(issued.token)
        return issued.token, issued.info.id

    def context(self) -> ssl.SSLContext:
        """A client context trusting only the deployment's local CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        *,
        port: int | None = None,
        source: str | None = None,
        certificate: tuple[Path, Path] | None = None,
        timeout: float = 10,
    ) -> tuple[int, dict[str, str], Any]:
        """One HTTPS request (to ``port``, default the gateway's); status, headers, JSON or text.

        ``timeout``: seconds for the connection and each read (a first request that
        makes a process import a module may need more on a loaded machine).

        ``source`` is the local address it comes from (on Linux every 127.x.y.z is
        loopback): failure budgets count per source address, so a test that fails
        on purpose can do it from an address of its own. ``certificate``: the
        client certificate and key files to present.
        """
        context = self.context()
        if certificate is not None:
            context.load_cert_chain(*certificate)
        connection = http.client.HTTPSConnection(
            "127.0.0.1",
            port or self.port,
            context=context,
            timeout=timeout,
            source_address=(source, 0) if source else None,
        )
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            raw = response.read()
            found = {k.lower(): v for k, v in response.getheaders()}
        finally:
            connection.close()
        try:
            payload: Any = json.loads(raw)
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        return response.status, found, payload

    def metrics(self) -> str:
        """The text the metrics listener serves (plain HTTP on loopback)."""
        listener = self.gateway.metrics_listener
        if listener is None:
            raise RuntimeError("this gateway serves no metrics")
        parts = urlsplit(listener.url)
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        try:
            connection.request("GET", parts.path)
            response = connection.getresponse()
            text = response.read().decode()
            if response.status != 200:
                raise RuntimeError(f"the metrics listener answered {response.status}")
        finally:
            connection.close()
        return text

    def audit_entries(
        self, correlation_id: str | None, action: str | None = None, *, reason: str | None = None
    ) -> list[dict[str, Any]]:
        """The audit entries of one request (of ``action`` if given), in log order.

        ``correlation_id`` None: of any request or none (a reload's); ``reason``:
        only entries whose reason contains it. Waits up to 5 s for the first to
        land (best-effort entries are written with the next batch); an empty
        list if none has by then.
        """
        engine = create_engine(self.deployment.settings.audit_url)
        deadline = time.monotonic() + 5
        try:
            while True:
                with engine.connect() as connection:
                    rows = connection.execute(select(BODIES.c.body).order_by(BODIES.c.idx)).all()
                found = [
                    entry
                    for entry in (json.loads(row.body) for row in rows)
                    if correlation_id in {None, entry.get("correlation_id")}
                    and (action is None or entry.get("action") == action)
                    and (reason is None or reason in str(entry.get("reason")))
                ]
                if found or time.monotonic() > deadline:
                    return found
                time.sleep(0.05)
        finally:
            engine.dispose()

    def raw(self, data: bytes) -> bytes:
        """Send raw bytes over TLS and return whatever comes back (until close or 5 s)."""
        with (
            socket.create_connection(("127.0.0.1", self.port), timeout=5) as plain,
            self.context().wrap_socket(plain, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(data)
            chunks = []
            try:
                while chunk := tls.recv(65536):
                    chunks.append(chunk)
                    if b"\r\n\r\n" in b"".join(chunks) and len(b"".join(chunks)) > 0:
                        head, _, rest = b"".join(chunks).partition(b"\r\n\r\n")
                        length = _content_length(head)
                        if length is not None and len(rest) >= length:
                            break
            except (TimeoutError, ssl.SSLError, ConnectionResetError):
                pass
        return b"".join(chunks)


class Signer:
    """A partner's key, registered for ``client``, signing as the SDK does.

    It builds signatures with the library directly instead of the SDK's
    ``RequestSigner``: the stale, future and replay tests must set ``created``
    and fixed nonces, which the SDK (rightly) never lets a caller choose.
    """

    def __init__(self, env: Env, *, hmac: bool = False, client: str = "order-sync") -> None:
        manifest = env.gateway.gateway.manifest
        self.keys = ClientKeys(env.deployment.engine, env.deployment.keyring, manifest)
        self.private: Any
        self.alg: type[HTTPSignatureAlgorithm]
        if hmac:
            issued = self.keys.create_shared_secret(client)
            self.keyid, self.alg = issued.keyid, HMAC_SHA256
            self.private = base64.b64decode(issued.secret)
        else:
            key = OKPKey.generate_key("Ed25519", private=True)
            self.keyid = self.keys.register(client, key.as_dict(private=False), use="signature")
            self.private, self.alg = key.private_key, ED25519
        self.port = env.port

    def headers(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        created: datetime | None = None,
        nonce: str | None = "fresh",
        base: str | None = None,
    ) -> dict[str, str]:
        """The signature headers (and Content-Type, Content-Digest) for one request.

        ``base`` is the scheme and authority the ``@target-uri`` names (default:
        the gateway's own address).
        """
        headers = {"Content-Type": "application/json"} if body else {}
        target = f"{base or f'https://127.0.0.1:{self.port}'}{path}"
        message = SignedMessage(method, target, headers)
        resolver = MappingKeyResolver(public_keys={}, private_keys={self.keyid: self.private})
        HTTPMessageSigner(signature_algorithm=self.alg, key_resolver=resolver).sign(
            message,
            key_id=self.keyid,
            label="sig1",
            created=created or datetime.now(UTC),
            nonce=secrets.token_urlsafe(16) if nonce == "fresh" else nonce,
            covered_component_ids=("@method", "@target-uri", *(("content-type",) if body else ())),
            body=body or None,
        )
        return headers

    def revoke(self) -> None:
        """Revoke the key (the shared gateway's clients hold at most five)."""
        self.keys.revoke(self.keyid, "signature")


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return None


def _start_upstream(  # noqa: PLR0917  (one private helper, called twice)
    workdir: Path, name: str, cert: bytes, key: bytes, token_file: Path, jwks_file: Path
) -> Upstream:
    cert_path, key_path = workdir / f"{name}.pem", workdir / f"{name}.key"
    cert_path.write_bytes(cert)
    write_private_file(key_path, key)
    process = subprocess.Popen(  # noqa: S603  (our own module, fixed arguments)
        [
            sys.executable,
            "-m",
            "interlock.testing.sample_erp",
            "--cert",
            str(cert_path),
            "--key",
            str(key_path),
            "--token-file",
            str(token_file),
            "--jwks-file",
            str(jwks_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline() if process.stdout else ""
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"upstream {name} did not start: {line!r}")
    return Upstream(process, int(line.split()[1]))


@dataclass
class Running:
    """The whole set-up, for teardown."""

    env: Env
    upstreams: list[Upstream]
    thread: threading.Thread


def start(
    workdir: Path,
    *,
    token_lifetime_seconds: int = 600,
    dpop_nonce: bool = False,
    database_url: str | None = None,
    redis_url: str | None = None,
    port: int = 0,
    public_url: str | None = None,
    auth_failures_per_ip: str = "100000/min",
    trusted_proxies: str = "",
    audit_pseudonymise_ip: bool = True,
    proxy_protocol: str = "off",
    more_settings: Mapping[str, Any] | None = None,
    privacy: PrivacyRuntime | None = None,
) -> Running:
    """Initialise a deployment, start both upstreams and the gateway.

    ``token_lifetime_seconds``, ``dpop_nonce``, ``database_url``, ``redis_url``,
    ``public_url``, ``auth_failures_per_ip``, ``trusted_proxies``,
    ``audit_pseudonymise_ip`` and ``proxy_protocol`` set the settings of the same names (default: SQLite in
    ``workdir``, no Redis, a failure budget per address that the whole suite, all
    from 127.0.0.1, cannot spend, and no trusted proxies); ``port`` is the gateway's
    (0: any free one); ``more_settings`` sets any others (``listener_headers_seconds=0.5``);
    ``privacy`` serves ``/v1/privacy`` (default: not served).
    """
    logs = io.StringIO()
    configure_logging("debug", "json", logs)
    settings = Settings(
        data_dir=workdir / "data",
        database_url=database_url or f"sqlite:///{workdir / 'store.db'}",
        redis_url=redis_url,
        public_url=public_url,
        oauth_token_lifetime_seconds=token_lifetime_seconds,
        oauth_dpop_nonce=dpop_nonce,
        auth_failures_per_ip=parse_rate(auth_failures_per_ip),
        trusted_proxies=trusted_proxies,
        audit_pseudonymise_ip=audit_pseudonymise_ip,
        proxy_protocol=proxy_protocol,
        **(more_settings or {}),
    )
    deployment = initialise(settings)
    ca = ensure_local_ca(deployment.engine, deployment.keyring, deployment.deployment_id)
    erp_token = "erp-outbound-" + os.urandom(16).hex()
    token_file = workdir / "erp-token"
    write_private_file(token_file, erp_token.encode())
    # Set-up, not evidence: these writes go to a sink of their own.
    vault = Vault(deployment.engine, deployment.keyring, audit=MemorySink())
    vault.write("erp/api-key", erp_token.encode(), actor=HARNESS)
    # The product_sellable rule's read-only view, and its URL as the secret it names.
    catalogue = _catalogue(workdir)
    vault.write("catalogue/readonly-url", catalogue.encode(), actor=HARNESS)

    # The sample ERP's privacy webhook takes requests signed by the gateway's keys.
    signing_keys = SigningKeys(deployment.engine, deployment.keyring, settings.oauth_signing_alg)
    signing_keys.ensure()
    jwks_file = workdir / "interlock-jwks.json"
    jwks_file.write_text(json.dumps(signing_keys.jwks()))
    issued = ca.issue_server(["localhost", "127.0.0.1"])
    erp = _start_upstream(
        workdir, "erp", issued.certificate_pem, issued.private_key_pem, token_file, jwks_file
    )
    rogue_ca, rogue_ca_key = self_signed_ca("Nobody trusts this CA", timedelta(days=1))
    rogue_cert, rogue_key = issue_server_certificate(
        rogue_ca, rogue_ca_key, ["localhost"], timedelta(days=1)
    )
    rogue = _start_upstream(
        workdir,
        "rogue",
        certificate_pem(rogue_cert),
        private_key_pem(rogue_key),
        token_file,
        jwks_file,
    )

    manifest_path = workdir / "interlock.yaml"
    manifest_path.write_text(MANIFEST.format(erp_port=erp.port, rogue_port=rogue.port))
    manifest = load_manifest(manifest_path)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    listener = ListenerConfig(
        port=port,
        limits=UpstreamLimits(read_seconds=1.0, max_response_bytes=1024 * 1024),
        metrics=("127.0.0.1", 0),  # a free port: suites and replicas run side by side
    )
    gateway = asyncio.run_coroutine_threadsafe(
        start_gateway(deployment, manifest, listener, manifest_path, privacy=privacy), loop
    ).result(timeout=30)
    keys = ApiKeys(deployment.engine, deployment.keyring, manifest)
    env = Env(deployment, gateway, keys, gateway.ca_file, erp_token, logs, loop, manifest_path)
    return Running(env, [erp, rogue], thread)


def _catalogue(workdir: Path) -> str:
    """A SQLite product catalogue with a view of the sellable products (SKU-1..SKU-9)."""
    path = workdir / "catalogue.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS products (sku TEXT, sellable INTEGER)")
        connection.executemany(
            "INSERT INTO products VALUES (?, ?)",
            [*((f"SKU-{n}", 1) for n in range(1, 10)), ("SKU-666", 0)],
        )
        connection.execute(
            "CREATE VIEW IF NOT EXISTS sellable_products AS "
            "SELECT sku FROM products WHERE sellable = 1"
        )
    connection.close()
    return f"sqlite:///{path}"


def stop(running: Running) -> None:
    """Stop the gateway, the loop and the upstream processes."""
    env = running.env
    asyncio.run_coroutine_threadsafe(env.gateway.stop(), env.loop).result(timeout=30)
    env.loop.call_soon_threadsafe(env.loop.stop)
    running.thread.join(timeout=10)
    # Store calls still running in the loop's executor threads hold pooled connections:
    # wait for them before the engine is disposed, or a connection checked in after
    # dispose() is left to the garbage collector, unclosed (asyncio.run does the same).
    env.loop.run_until_complete(env.loop.shutdown_default_executor())
    env.loop.close()
    for upstream in running.upstreams:
        upstream.process.terminate()
        upstream.process.wait(timeout=10)
        if upstream.process.stdout:
            upstream.process.stdout.close()
    env.deployment.close()


@contextmanager
def running_gateway(workdir: Path, **options: Any) -> Iterator[Env]:
    """``start`` (with ``options``), then ``stop`` and undo the logging set-up ``start`` did."""
    running = start(workdir, **options)
    try:
        yield running.env
    finally:
        stop(running)
        logging.getLogger().handlers.clear()
        structlog.reset_defaults()


def lines(env: Env) -> Iterator[dict[str, Any]]:
    """Parsed log lines so far."""
    for line in env.logs.getvalue().splitlines():
        yield json.loads(line)
