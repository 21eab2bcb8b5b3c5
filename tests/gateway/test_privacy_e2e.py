"""/v1/privacy with the real service: a call carrying a person, trace, erasure, receipt.

A gateway of its own whose manifest locates the customer's email in order
responses and gives the sample ERP a webhook connector. A call through the
gateway puts the person in the lineage index; the HTTP API traces them,
erases them (the ERP's webhook, signed with the gateway's own key, and an
operator's confirmation for the system without a connector) and hands out the
receipt, which verifies offline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from interlock.audit.schema import BODIES
from interlock.cli.privacy_wiring import privacy_factory, request_signer
from interlock.gateway.privacy_runtime import PrivacyRuntime
from interlock.oauth.signing_keys import SigningKeys
from interlock.sdk.receipts import verify_receipt
from interlock.sdk.rfc9421 import RequestSigner
from interlock.testing.gateway import Env, running_gateway
from tests.conftest import fresh_schema

JSON = {"Content-Type": "application/json"}
PERSON = "ada@example.com"  # the sample ERP's customer of order 1001
ROUTE = (
    '- {method: GET, path: "/orders/{id}", upstream: erp, '
    'upstream_path: "/sap/opu/odata/orders/{id}", scope: orders.read'
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The store and the audit log on SQLite files, then each in a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield {}
        return
    with fresh_schema() as store, fresh_schema() as audit:
        yield {"database_url": store, "more_settings": {"audit_database_url": audit}}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, backend: dict[str, Any]) -> Iterator[Env]:
    """The harness's gateway with the real service, its manifest extended for privacy."""
    keys: list[SigningKeys] = []

    def signer() -> RequestSigner:
        return request_signer(keys[0])()

    runtime = PrivacyRuntime(privacy_factory(signer), every=0.1)
    workdir = tmp_path_factory.mktemp("privacy-e2e")
    with running_gateway(workdir, privacy=runtime, **backend) as running:
        settings = running.deployment.settings
        keys.append(
            SigningKeys(
                running.deployment.engine, running.deployment.keyring, settings.oauth_signing_alg
            )
        )
        manifest = running.gateway.gateway.manifest
        erp = manifest.systems["erp"].url.rstrip("/")
        text = running.manifest_path.read_text()
        credentials = 'credentials: "secret://erp/api-key"}'
        text = text.replace(
            credentials,
            f'credentials: "secret://erp/api-key", '
            f'privacy: {{webhook: {{url: "{erp}/privacy/requests"}}}}}}',
            1,
        )
        if ROUTE not in text:
            raise AssertionError("the harness's order route changed")
        text = text.replace(
            ROUTE, ROUTE + ", subjects: [{kind: email, in: response, json: /customer/email}]", 1
        )
        running.manifest_path.write_text(text)
        if not running.gateway.reload():
            raise AssertionError("the extended manifest was refused")
        yield running


def _wait(check: Callable[[], Any], what: str) -> Any:
    """Poll ``check`` until it returns something truthy (background work: lineage, run_due)."""
    # Generous: the ERP's first signed request imports its verifier (seconds on a busy
    # machine). A deadline for giving up, not a timed assertion: success returns at once.
    deadline = time.monotonic() + 120
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def test_call_trace_erase_receipt(env: Env) -> None:
    """The whole path over HTTPS: nothing but the API, the ERP and the gateway's own key."""
    issued = env.keys.create("privacy-desk", ["privacy.admin"])
    env.issued_tokens.append(issued.token)
    admin = {"X-API-Key": issued.token}
    token, _ = env.key(["orders.read"])
    status, _, order = env.request("GET", "/orders/1001", {"X-API-Key": token})
    assert (status, order["customer"]["email"]) == (200, PERSON)

    subject = {"kind": "email", "value": "Ada@Example.com"}  # normalised by the API's service

    def traced() -> list[Any]:
        status, _, report = env.request(
            "POST", "/v1/privacy/trace", admin | JSON, json.dumps({"subject": subject}).encode()
        )
        assert status == 200, report
        return list(report["systems"])

    systems = _wait(traced, "the lineage of the call")
    assert systems

    status, headers, view = env.request(
        "POST",
        "/v1/privacy/requests",
        admin | JSON,
        json.dumps({"kind": "erase", "subject": subject}).encode(),
    )
    assert status == 201, view
    location = headers["location"]
    assert view["actor"] == "client:privacy-desk"
    by_system = {s["system"]: s for s in view["systems"]}
    assert by_system["erp"]["connector"] == "webhook"

    def erp_answered() -> dict[str, Any] | None:
        _, _, current = env.request("GET", location, admin)
        found = {s["system"]: s for s in current["systems"]}
        return current if found["erp"]["status"] in {"done", "not_found", "failed"} else None

    current = _wait(erp_answered, "the ERP's answer")
    erp = next(s for s in current["systems"] if s["system"] == "erp")
    assert (erp["status"], erp["records"]) == ("done", 2), erp
    for manual in (s for s in current["systems"] if s["status"] == "manual-pending"):
        status, _, current = env.request(
            "POST",
            f"{location}/confirmations",
            admin | JSON,
            json.dumps(
                {"system": manual["system"], "status": "not_found", "note": "checked by hand"}
            ).encode(),
        )
        assert status == 200, current

    def receipt() -> dict[str, Any] | None:
        status, _, document = env.request("GET", f"{location}/receipt", admin)
        return document if status == 200 else None

    document = _wait(receipt, "the receipt")
    summary = verify_receipt(document, [env.gateway.services.audit_log.keys.verifier])
    assert summary is not None
    # The ERP erased the customer and the order: the gateway now forwards its 404.
    status, _, _ = env.request("GET", "/orders/1001", {"X-API-Key": token})
    assert status == 404
    assert PERSON not in env.logs.getvalue()
    engine = create_engine(env.deployment.settings.audit_url)
    try:
        with engine.connect() as connection:
            bodies = [bytes(row.body) for row in connection.execute(select(BODIES.c.body))]
    finally:
        engine.dispose()
    assert bodies
    assert not [body for body in bodies if PERSON.encode() in body]


def test_an_export_bundles_what_the_erp_answered(env: Env) -> None:
    """Art. 20: the bundle holds the ERP's records of the person, as an attachment."""
    issued = env.keys.create("privacy-desk", ["privacy.admin"])
    env.issued_tokens.append(issued.token)
    admin = {"X-API-Key": issued.token}
    token, _ = env.key(["orders.read"])
    status, _, _ = env.request("GET", "/orders/1002", {"X-API-Key": token})
    assert status == 200
    subject = {"kind": "email", "value": "alan@example.com"}

    def traced() -> bool:
        _, _, report = env.request(
            "POST", "/v1/privacy/trace", admin | JSON, json.dumps({"subject": subject}).encode()
        )
        return bool(report["systems"])

    _wait(traced, "the lineage of the call")
    status, headers, view = env.request(
        "POST",
        "/v1/privacy/requests",
        admin | JSON,
        json.dumps({"kind": "export", "subject": subject, "systems": ["erp"]}).encode(),
    )
    assert status == 201, view
    location = headers["location"]
    for manual in (s for s in view["systems"] if s["status"] == "manual-pending"):
        status, _, _ = env.request(
            "POST",
            f"{location}/confirmations",
            admin | JSON,
            json.dumps(
                {"system": manual["system"], "status": "not_found", "note": "nothing held"}
            ).encode(),
        )
        assert status == 200

    def bundle() -> dict[str, Any] | None:
        status, headers, document = env.request("GET", f"{location}/export", admin)
        if status != 200:
            return None
        assert headers["content-disposition"].startswith("attachment;")
        assert headers["cache-control"] == "no-store"
        return dict(document)

    document = _wait(bundle, "the export bundle")
    erp = document["data"]["erp"]
    assert erp["customer"]["email"] == "alan@example.com"
    assert [order["id"] for order in erp["orders"]] == ["1002"]
