"""The webhook connector against a real HTTPS server that checks Interlock's signature."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest
from joserfc.jwk import ECKey
from requests.structures import CaseInsensitiveDict
from structlog.testing import capture_logs

from interlock.actors import Operator
from interlock.audit.sink import MemorySink
from interlock.config.manifest import WebhookConnector as WebhookSettings
from interlock.config.settings import Settings
from interlock.errors import NotFoundError
from interlock.gdpr.identifiers import normalise
from interlock.identity.client_keys import ResolvedKey
from interlock.oauth.signing_keys import SigningKeys
from interlock.outbound import tls_context
from interlock.privacy.connectors import ConnectorEnvironment, ConnectorError, connector_factory
from interlock.privacy.connectors.webhook import MAX_ANSWER, WebhookConnector
from interlock.privacy.requests import PrivacyRequests
from interlock.replay.signatures import SignatureRefused, SignedMessage, verify_with_key
from interlock.sdk.rfc9421 import RequestSigner
from interlock.secret import Secret
from interlock.store import Deployment, initialise
from interlock.testing.clock import ManualClock
from interlock.testing.tls import LocalTls, https_server, make_tls
from tests.privacy.request_support import MANIFEST, manifest, open_lineage
from tests.privacy.request_support import seen as lineage_saw

IDENTIFIER = "ada.lovelace@example.com"
REQUEST = "dsr_abcdefghijklmnopqrstuvwx"


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    headers: CaseInsensitiveDict[str]
    body: bytes


class Handler(BaseHTTPRequestHandler):
    """Answers from ``script`` (status, body, delay) and records what it received."""

    script: ClassVar[list[tuple[int, bytes, float]]] = []
    seen: ClassVar[list[Seen]] = []

    def do_POST(self) -> None:
        """Record the request, then answer the next scripted step (default: done)."""
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(dict(self.headers.items()))
        Handler.seen.append(Seen("POST", self.path, headers, body))
        status, answer, delay = (
            Handler.script.pop(0) if Handler.script else (200, b'{"status":"done","records":1}', 0)
        )
        if delay:
            time.sleep(delay)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the client gave up (the timeout test)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base's name)
        """Quiet."""


@dataclass
class Vault:
    """The vault's ``resolve``: fixed values by reference."""

    values: dict[str, bytes] = field(default_factory=dict)

    def resolve(self, reference: str) -> Secret:
        """The value, or NotFoundError."""
        if reference not in self.values:
            raise NotFoundError("no such secret")
        return Secret(self.values[reference])


@pytest.fixture
def tls(tmp_path: Path) -> LocalTls:
    """A CA the test makes, and a certificate for localhost."""
    return make_tls(tmp_path / "tls")


@pytest.fixture
def server(tls: LocalTls) -> Iterator[int]:
    """The receiving system's HTTPS endpoint; yields its port."""
    Handler.script = []
    Handler.seen = []
    with https_server(Handler, tls) as running:
        yield running.server_address[1]


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """A deployment on SQLite (its OAuth signing keys sign the webhook requests)."""
    created = initialise(
        Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 's.db'}")
    )
    yield created
    created.close()


@pytest.fixture
def keys(deployment: Deployment) -> SigningKeys:
    """Interlock's OAuth signing keys, the first one active."""
    signing = SigningKeys(deployment.engine, deployment.keyring, "ES256")
    signing.ensure()
    return signing


def connector(
    port: int,
    tls: LocalTls,
    keys: SigningKeys,
    *,
    ca: str | None = None,
    credentials: str | None = None,
    timeout: float = 5,
) -> WebhookConnector:
    """A connector for system ``erp`` whose webhook is the test server."""
    settings = WebhookSettings(
        url=f"https://localhost:{port}/privacy",
        credentials=credentials,
        timeout=timedelta(seconds=timeout),
    )

    def signer() -> RequestSigner:
        current = keys.signer()
        assert isinstance(current.key, ECKey)
        return RequestSigner(current.kid, current.key)

    environment = ConnectorEnvironment(
        secrets=Vault({"secret://erp/privacy-token": b"t0ken-value"}),
        trust=lambda anchor: tls_context(anchor.removeprefix("file:")),
        signer=signer,
    )
    return WebhookConnector("erp", settings, ca or f"file:{tls.ca_file}", environment)


def verify(seen: Seen, port: int, keys: SigningKeys) -> dict[str, Any]:
    """Check the request's RFC 9421 signature with the key the JWKS publishes."""
    params = seen.headers["Signature-Input"]
    (jwk,) = [k for k in keys.jwks()["keys"] if f'keyid="{k["kid"]}"' in params]
    public = ECKey.import_key(jwk).public_key
    url = f"https://localhost:{port}{seen.path}"
    covered, parameters = verify_with_key(
        SignedMessage("POST", url, seen.headers),
        ResolvedKey(jwk["kid"], "interlock", "ecdsa-p256-sha256", public),
        max_age=timedelta(minutes=5),
        required=("@method", "@target-uri", "content-type", "content-digest"),
    )
    digest = base64.b64encode(hashlib.sha256(seen.body).digest()).decode()
    assert seen.headers["Content-Digest"] == f"sha-256=:{digest}:"
    assert "created" in parameters
    return covered


def test_the_request_is_signed_by_interlock_and_verifies_with_its_jwks(
    server: int, tls: LocalTls, keys: SigningKeys
) -> None:
    Handler.script = [(200, b'{"status":"done","records":2,"data":{"orders":[1,2]}}', 0)]
    answer = connector(server, tls, keys, credentials="secret://erp/privacy-token").ask(
        "access", REQUEST, "email", IDENTIFIER, None
    )
    assert (answer.status, answer.records, answer.data) == ("done", 2, {"orders": [1, 2]})
    (seen,) = Handler.seen
    covered = verify(seen, server, keys)
    assert {'"@method"', '"@target-uri"', '"content-type"', '"content-digest"'} <= set(covered)
    assert seen.headers["Idempotency-Key"] == f"{REQUEST}:erp"
    assert seen.headers["Authorization"] == "Bearer t0ken-value"
    assert json.loads(seen.body) == {
        "request_id": REQUEST,
        "action": "access",
        "subject": {"kind": "email", "value": IDENTIFIER},
    }


def test_a_changed_signature_parameter_does_not_verify(
    server: int, tls: LocalTls, keys: SigningKeys
) -> None:
    connector(server, tls, keys).ask("erase", REQUEST, "email", IDENTIFIER, None)
    (seen,) = Handler.seen
    seen.headers["Signature-Input"] = seen.headers["Signature-Input"].replace(
        "created=", "created=1"
    )
    with pytest.raises(SignatureRefused):
        verify(seen, server, keys)


def test_a_rectification_sends_its_corrections(
    server: int, tls: LocalTls, keys: SigningKeys
) -> None:
    answer = connector(server, tls, keys).ask(
        "rectify", REQUEST, "email", IDENTIFIER, {"name": "Ada King"}
    )
    assert answer.data is None  # only access and export answer with data
    assert json.loads(Handler.seen[0].body)["corrections"] == {"name": "Ada King"}


def test_not_found_is_an_answer(server: int, tls: LocalTls, keys: SigningKeys) -> None:
    Handler.script = [(200, b'{"status":"not_found","records":0}', 0)]
    answer = connector(server, tls, keys).ask("erase", REQUEST, "email", IDENTIFIER, None)
    assert (answer.status, answer.records) == ("not_found", 0)


@pytest.mark.parametrize(
    ("status", "body", "retryable", "message"),
    [
        (503, b"busy: ada.lovelace@example.com", True, "HTTP 503"),
        (500, b"", True, "HTTP 500"),
        (429, b"", True, "HTTP 429"),
        (404, b"no such ada.lovelace@example.com", False, "HTTP 404"),
        (401, b"", False, "HTTP 401"),
        (302, b"", False, "HTTP 302"),
        (200, b"<html>ada.lovelace@example.com</html>", False, "not JSON"),
        (200, b"[1, 2]", False, "not a JSON object"),
        (200, b'{"status": "deleted", "records": 1}', False, '"status"'),
        (200, b'{"status": "done", "records": -1}', False, '"records"'),
        (200, b'{"status": "done", "records": true}', False, '"records"'),
        (200, b'{"status": "done"}', False, '"records"'),
    ],
)
def test_bad_answers_fail_clearly_without_echoing(  # noqa: PLR0917  (one case per parameter)
    server: int,
    tls: LocalTls,
    keys: SigningKeys,
    status: int,
    body: bytes,
    retryable: bool,
    message: str,
) -> None:
    Handler.script = [(status, body, 0)]
    with pytest.raises(ConnectorError, match=message) as caught:
        connector(server, tls, keys).ask("erase", REQUEST, "email", IDENTIFIER, None)
    assert caught.value.retryable is retryable
    assert IDENTIFIER not in str(caught.value)
    assert "busy" not in str(caught.value)
    assert "html" not in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        b'{"status": "done", "records": 1, "data": {"x": NaN}}',
        b'{"status": "done", "records": 1, "data": [Infinity]}',
        b'{"status": "done", "records": NaN, "data": 1}',
        b'{"status": "done", "records": 1, "data": 1e400}',
        b'{"status": "done", "records": 1, "data": "\\ud800"}',
        b'{"status": "done", "records": 1, "data": {"\\udfff": 1}}',
    ],
)
def test_an_answer_that_is_not_strict_json_fails_at_once(
    server: int, tls: LocalTls, keys: SigningKeys, body: bytes
) -> None:
    """NaN, Infinity, a number past a double, a lone surrogate: no canonical JSON, no digest.

    Accepted before, they made the worker's digest raise outside any handler,
    which stopped every data-subject request behind this one.
    """
    Handler.script = [(200, body, 0)]
    with pytest.raises(ConnectorError, match="not JSON") as caught:
        connector(server, tls, keys).ask("access", REQUEST, "email", IDENTIFIER, None)
    assert not caught.value.retryable


def test_a_missing_ca_file_is_a_retryable_failure(
    server: int, tls: LocalTls, keys: SigningKeys, tmp_path: Path
) -> None:
    """A moved CA file raised FileNotFoundError past the worker; now one clear failure."""
    missing = tmp_path / "moved" / "ca.pem"
    with pytest.raises(ConnectorError, match="could not be prepared") as caught:
        connector(server, tls, keys, ca=f"file:{missing}").ask(
            "erase", REQUEST, "email", IDENTIFIER, None
        )
    assert caught.value.retryable
    assert str(missing) not in str(caught.value)
    assert Handler.seen == []


def test_an_oversize_answer_is_refused(server: int, tls: LocalTls, keys: SigningKeys) -> None:
    huge = b'{"status":"done","records":1,"data":"' + b"x" * MAX_ANSWER + b'"}'
    Handler.script = [(200, huge, 0)]
    with pytest.raises(ConnectorError, match="larger than") as caught:
        connector(server, tls, keys).ask("access", REQUEST, "email", IDENTIFIER, None)
    assert not caught.value.retryable


def test_a_slow_system_times_out_and_may_be_retried(
    server: int, tls: LocalTls, keys: SigningKeys
) -> None:
    Handler.script = [(200, b'{"status":"done","records":1}', 2)]
    with pytest.raises(ConnectorError, match="did not answer in time") as caught:
        connector(server, tls, keys, timeout=0.5).ask("erase", REQUEST, "email", IDENTIFIER, None)
    assert caught.value.retryable


def test_a_certificate_from_another_ca_is_refused(
    server: int, tls: LocalTls, keys: SigningKeys, tmp_path: Path
) -> None:
    other = make_tls(tmp_path / "other", name="Someone else's CA")
    with pytest.raises(ConnectorError, match="did not verify") as caught:
        connector(server, tls, keys, ca=f"file:{other.ca_file}").ask(
            "erase", REQUEST, "email", IDENTIFIER, None
        )
    assert Handler.seen == []  # nothing reached the impostor's handler
    assert caught.value.retryable


def test_a_missing_credential_fails_before_sending(
    server: int, tls: LocalTls, keys: SigningKeys
) -> None:
    with pytest.raises(ConnectorError, match="could not be prepared"):
        connector(server, tls, keys, credentials="secret://erp/missing").ask(
            "erase", REQUEST, "email", IDENTIFIER, None
        )
    assert Handler.seen == []


def test_nothing_listens_is_retryable(tls: LocalTls, keys: SigningKeys) -> None:
    with pytest.raises(ConnectorError, match="could not be reached") as caught:
        connector(1, tls, keys).ask("erase", REQUEST, "email", IDENTIFIER, None)
    assert caught.value.retryable


def service_for(
    server: int, tls: LocalTls, keys: SigningKeys, deployment: Deployment, tmp_path: Path
) -> tuple[PrivacyRequests, ManualClock, MemorySink]:
    """The service with the real connector factory; erp's webhook is the test server."""
    text = MANIFEST.replace(
        'privacy: {webhook: {url: "https://erp.internal:9443/privacy"}}',
        f'ca: "file:{tls.ca_file}"\n'
        f'    privacy: {{webhook: {{url: "https://localhost:{server}/privacy"}}}}',
    )
    clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    lineage, hasher = open_lineage(deployment.engine, deployment.keyring)
    audit = MemorySink()
    lineage_saw(lineage, hasher.digest("email", normalise("email", IDENTIFIER)), "erp")
    loaded = manifest(tmp_path, text)

    def signer() -> RequestSigner:
        current = keys.signer()
        assert isinstance(current.key, ECKey)
        return RequestSigner(current.kid, current.key)

    environment = ConnectorEnvironment(
        secrets=Vault(),
        trust=lambda anchor: tls_context(anchor.removeprefix("file:")),
        signer=signer,
    )
    service = PrivacyRequests(
        deployment.engine,
        deployment.keyring,
        loaded,
        audit,
        lineage,
        hasher,
        clock=clock,
        connectors=connector_factory(loaded, environment),
    )
    return service, clock, audit


def test_a_request_retries_the_webhook_after_a_503_with_the_same_idempotency_key(
    server: int, tls: LocalTls, keys: SigningKeys, deployment: Deployment, tmp_path: Path
) -> None:
    """The service, the real connector factory and the HTTPS system: 503, then done."""
    service, clock, _ = service_for(server, tls, keys, deployment, tmp_path)
    Handler.script = [(503, b"", 0), (200, b'{"status":"done","records":3}', 0)]
    view = service.create("erase", "email", IDENTIFIER.upper(), actor=Operator("admin:alice"))
    service.run_due()
    assert service.get(view.id).systems[0].error == "the webhook answered HTTP 503"
    clock.advance(timedelta(minutes=1))
    service.run_due()
    closed = service.get(view.id)
    assert closed.status == "closed"
    assert (closed.systems[0].status, closed.systems[0].records) == ("done", 3)
    assert [s.headers["Idempotency-Key"] for s in Handler.seen] == [f"{view.id}:erp"] * 2
    assert [json.loads(s.body)["subject"]["value"] for s in Handler.seen] == [IDENTIFIER] * 2
    for seen in Handler.seen:
        verify(seen, server, keys)


def test_garbage_from_the_webhook_fails_the_system_and_the_request_is_incomplete(  # noqa: PLR0917  (fixtures)
    server: int,
    tls: LocalTls,
    keys: SigningKeys,
    deployment: Deployment,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service, _, audit = service_for(server, tls, keys, deployment, tmp_path)
    Handler.script = [(200, b"<html>" + IDENTIFIER.encode() + b"</html>", 0)]
    caplog.set_level(logging.DEBUG)  # httpx and httpcore log each request at debug level
    with capture_logs() as logs:
        view = service.create("access", "email", IDENTIFIER, actor=Operator("admin:alice"))
        service.run_due()
    assert caplog.records  # the HTTP client's own lines were captured, and hold no identifier
    assert IDENTIFIER not in caplog.text
    assert IDENTIFIER not in repr(logs)
    closed = service.get(view.id)
    assert closed.outcome == "incomplete"
    assert (closed.systems[0].status, closed.systems[0].error) == (
        "failed",
        "the webhook's answer is not JSON",
    )
    assert len(Handler.seen) == 1  # not retried
    assert all(IDENTIFIER.encode() not in encoded for encoded in audit.encoded)


def test_the_cli_wires_the_vault_the_signing_key_and_the_trust_anchor(
    server: int,
    tls: LocalTls,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``interlock privacy request access`` then ``run``: a signed, verified, trusted call."""
    from interlock.cli.context import settings
    from interlock.cli.main import main
    from interlock.store import open_deployment
    from tests.conftest import isolate_cli

    isolate_cli(monkeypatch, tmp_path)
    assert main(["init"]) == 0
    path = tmp_path / "interlock.yaml"
    path.write_text(
        MANIFEST.replace(
            'privacy: {webhook: {url: "https://erp.internal:9443/privacy"}}',
            f'ca: "file:{tls.ca_file}"\n'
            f'    privacy: {{webhook: {{url: "https://localhost:{server}/privacy"}}}}',
        )
    )
    Handler.script = [(200, b'{"status":"done","records":1,"data":{"name":"Ada"}}', 0)]
    capsys.readouterr()
    m = ["-m", str(path)]
    assert main(["privacy", "request", "access", IDENTIFIER, "-k", "email", "-s", "erp", *m]) == 0
    assert main(["privacy", "request", "run", "--until-done", *m]) == 0
    capsys.readouterr()
    assert main(["privacy", "request", "list", "--json", *m]) == 0
    (listed,) = json.loads(capsys.readouterr().out)["requests"]
    assert (listed["status"], listed["outcome"]) == ("closed", "completed")
    assert listed["systems"][0]["records"] == 1
    (seen,) = Handler.seen
    deployment = open_deployment(settings())
    try:
        verify(seen, server, SigningKeys(deployment.engine, deployment.keyring))
    finally:
        deployment.close()
    assert json.loads(seen.body)["subject"]["value"] == IDENTIFIER
