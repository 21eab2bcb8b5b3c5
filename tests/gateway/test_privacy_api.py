"""The data-subject request API (/v1/privacy): authenticated, scoped, audited, never leaking.

A gateway of its own, serving a fake service that implements
:class:`~interlock.gateway.privacy_api.PrivacyRequestsApi` and records what it
was asked: the API is tested for what it parses, refuses, passes on and
renders, and for what it leaves in logs, the audit trail and URLs.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from joserfc.jwk import ECKey
from sqlalchemy import create_engine, select

from interlock.actors import Actor
from interlock.audit.schema import BODIES
from interlock.config.manifest import Manifest
from interlock.errors import InvalidRequestError, NotFoundError
from interlock.gateway.privacy_api import PREFIX, label
from interlock.gateway.privacy_runtime import PrivacyParts, PrivacyRuntime
from interlock.gateway.privacy_service import PrivacyRequestsApi, RequestView, SubjectTracer
from interlock.oauth.signing_keys import SigningKeys
from interlock.privacy.requests import PrivacyRequests
from interlock.sdk.rfc9421 import RequestSigner
from interlock.testing.gateway import Env, lines, running_gateway

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
#: A person's identifier no log line, audit entry, URL or error body may ever carry.
# Fixed, not random: parametrised ids carry it, and pytest-xdist workers must collect alike.
SUBJECT = "ada.privacy-api-marker-5f3c@example.com"
#: A request id the fake service fails on.
BROKEN = "dsr_" + "B" * 24


@dataclass
class FakeView:
    """A request as the fake service keeps it."""

    id: str
    kind: str
    subject_kind: str
    status: str = "open"
    deadline_months: int = 1
    systems: dict[str, str] = field(default_factory=lambda: {"erp": "pending"})

    def as_json(self) -> dict[str, Any]:
        """The view: never the identifier."""
        return {
            "id": self.id,
            "kind": self.kind,
            "subject_kind": self.subject_kind,
            "status": self.status,
            "deadline_months": self.deadline_months,
            "systems": dict(self.systems),
        }


@dataclass
class FakeReport:
    """A trace report."""

    systems: list[str]

    def as_json(self) -> dict[str, Any]:
        """The report."""
        return {"systems": [{"system": s} for s in self.systems]}


class FakeRequests:
    """Implements PrivacyRequestsApi in memory, recording every call."""

    def __init__(self) -> None:
        self.views: dict[str, FakeView] = {}
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.due_runs = 0
        self.fail_next_due = False
        self.lock = threading.Lock()

    def _view(self, id: str) -> FakeView:  # noqa: A002
        found = self.views.get(id)
        if found is None:
            raise NotFoundError("no such request")
        return found

    def create(
        self,
        kind: str,
        subject_kind: str,
        identifier: str,
        *,
        actor: Actor,
        region: str | None = None,
        corrections: Mapping[str, str] | None = None,
        systems: Iterable[str] | None = None,
    ) -> RequestView:
        if subject_kind == "email" and "@" not in identifier:
            # As the identifier normaliser does: its message quotes the input.
            raise ValueError(f"{identifier!r} is not an email address")
        systems = list(systems) if systems is not None else None
        if systems is not None and "nowhere" in systems:
            raise InvalidRequestError("unknown system: nowhere")
        view = FakeView("dsr_" + secrets.token_urlsafe(18), kind, subject_kind)
        self.views[view.id] = view
        self.calls.append(
            (
                "create",
                (kind, subject_kind, identifier),
                {
                    "actor": actor.label,
                    "region": region,
                    "corrections": corrections,
                    "systems": systems,
                },
            )
        )
        return view

    def get(self, id: str) -> RequestView:  # noqa: A002
        if id == BROKEN:
            # As a database error does: its message quotes the bound parameters.
            raise RuntimeError(f"(IntegrityError) [parameters: ({SUBJECT!r},)]")
        return self._view(id)

    def list(self, status: str | None = None) -> list[RequestView]:
        self.calls.append(("list", (status,), {}))
        return [v for v in self.views.values() if status is None or v.status == status]

    def extend(self, id: str, *, months: int, reason: str, actor: Actor) -> RequestView:  # noqa: A002
        view = self._view(id)
        if view.status == "closed":
            raise InvalidRequestError("a closed request cannot be extended")
        self.calls.append(
            ("extend", (id,), {"months": months, "reason": reason, "actor": actor.label})
        )
        view.deadline_months += months
        return view

    def confirm(
        self,
        id: str,  # noqa: A002
        system: str,
        status: str,
        *,
        actor: Actor,
        note: str,
    ) -> RequestView:
        view = self._view(id)
        self.calls.append(("confirm", (id, system, status), {"actor": actor.label, "note": note}))
        view.systems[system] = status
        view.status = "closed"
        return view

    def export_bundle(self, id: str, *, actor: Actor) -> dict[str, Any]:  # noqa: A002
        view = self._view(id)
        return {"request": view.id, "sources": [{"system": "erp", "records": 2}]}

    def receipt(self, id: str) -> dict[str, Any] | None:  # noqa: A002
        view = self._view(id)
        return {"request": view.id, "signature": "sig"} if view.status == "closed" else None

    def run_due(self, now: Any = None) -> int:
        with self.lock:
            self.due_runs += 1
            if self.fail_next_due:
                self.fail_next_due = False
                raise RuntimeError(f"connector said: {SUBJECT} unknown")
        return 0


class FakeTracer:
    """Implements SubjectTracer, recording the subjects traced."""

    def __init__(self) -> None:
        self.traced: list[tuple[str, str, str | None]] = []

    def __call__(self, kind: str, identifier: str, region: str | None) -> FakeReport:
        self.traced.append((kind, identifier, region))
        return FakeReport(["erp"])


@dataclass
class Fakes:
    """The fakes the gateway serves."""

    requests: FakeRequests
    tracer: FakeTracer
    manifests: list[Manifest]


def _the_service_implements_the_protocol(service: PrivacyRequests) -> PrivacyRequestsApi:
    """Never called: ``mypy --strict`` checks here that the real service is what the API calls."""
    return service


def _last(fakes: Fakes) -> tuple[Any, ...]:
    """The service's last recorded call: (name, arguments, keyword arguments)."""
    return fakes.requests.calls[-1]


def _typed(requests: FakeRequests, tracer: FakeTracer) -> tuple[PrivacyRequestsApi, SubjectTracer]:
    """The fakes as the protocols (mypy checks they implement them)."""
    return requests, tracer


@pytest.fixture(scope="module")
def fakes() -> Fakes:
    """One fake service and tracer for the module's gateway."""
    return Fakes(FakeRequests(), FakeTracer(), [])


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, fakes: Fakes) -> Iterator[Env]:
    """A gateway serving /v1/privacy from the fakes, its due work run every 50 ms."""

    def factory(_: PrivacyParts, manifest: Manifest) -> tuple[PrivacyRequestsApi, SubjectTracer]:
        fakes.manifests.append(manifest)
        return _typed(fakes.requests, fakes.tracer)

    runtime = PrivacyRuntime(factory, every=0.05)
    with running_gateway(tmp_path_factory.mktemp("privacy"), privacy=runtime) as running:
        yield running


@pytest.fixture(scope="module")
def admin(env: Env) -> dict[str, str]:
    """An API key of privacy-desk with the scope privacy.admin."""
    issued = env.keys.create("privacy-desk", ["privacy.admin"])
    env.issued_tokens.append(issued.token)
    return {"X-API-Key": issued.token}


def _create(env: Env, admin: dict[str, str], **body: Any) -> tuple[int, dict[str, str], Any]:
    document = {"kind": "erase", "subject": {"kind": "email", "value": SUBJECT}, **body}
    return env.request(
        "POST", f"{PREFIX}/requests", {**admin, **JSON}, json.dumps(document).encode()
    )


def _audit_bodies(env: Env) -> str:
    engine = create_engine(env.deployment.settings.audit_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(BODIES.c.body).order_by(BODIES.c.idx)).all()
    finally:
        engine.dispose()
    return "\n".join(bytes(row.body).decode() for row in rows)


def test_without_a_credential_the_api_answers_401(env: Env, fakes: Fakes) -> None:
    """No credential: 401 with a Bearer challenge, a problem document, nothing created."""
    before = len(fakes.requests.views)
    status, headers, body = env.request(
        "POST", f"{PREFIX}/requests", JSON, json.dumps({"kind": "erase"}).encode()
    )
    assert status == 401
    assert headers["content-type"].startswith("application/problem+json")
    assert headers["www-authenticate"].startswith("Bearer")
    assert body["type"] == "urn:interlock:problem:unauthorized"
    assert len(fakes.requests.views) == before


def test_a_key_without_privacy_admin_is_refused_with_403(env: Env, fakes: Fakes) -> None:
    """order-sync's key (orders.read) may not create or list requests, nor trace anyone."""
    token, _ = env.key(["orders.read"])
    before = len(fakes.requests.calls)
    status, headers, body = _create(env, {"X-API-Key": token})
    assert (status, body["type"]) == (403, "urn:interlock:problem:insufficient-scope")
    assert body["required_scope"] == "privacy.admin"
    assert 'scope="privacy.admin"' in headers["www-authenticate"]
    status, _, _ = env.request("GET", f"{PREFIX}/requests", {"X-API-Key": token})
    assert status == 403
    assert len(fakes.requests.calls) == before


def test_create_get_and_list_a_request(env: Env, fakes: Fakes, admin: dict[str, str]) -> None:
    """201 with Location and the view; the service is asked as client:privacy-desk."""
    status, headers, body = _create(
        env, admin, kind="rectify", corrections={"email": "ada@new.example"}, systems=["erp"]
    )
    assert status == 201, body
    assert headers["cache-control"] == "no-store"
    assert headers["content-type"].startswith("application/json")
    request_id = body["id"]
    assert headers["location"] == f"/v1/privacy/requests/{request_id}"
    assert (body["kind"], body["status"]) == ("rectify", "open")
    name, args, kwargs = _last(fakes)
    assert (name, args) == ("create", ("rectify", "email", SUBJECT))
    assert kwargs == {
        "actor": "client:privacy-desk",
        "region": None,
        "corrections": {"email": "ada@new.example"},
        "systems": ["erp"],
    }
    status, headers, got = env.request("GET", headers["location"], admin)
    assert (status, got, headers["cache-control"]) == (200, body, "no-store")
    status, _, listed = env.request("GET", f"{PREFIX}/requests?status=open", admin)
    assert status == 200
    assert request_id in [view["id"] for view in listed["requests"]]
    assert _last(fakes) == ("list", ("open",), {})
    status, _, _ = env.request("GET", f"{PREFIX}/requests", admin)
    assert (status, _last(fakes)) == (200, ("list", (None,), {}))


def test_a_phone_subject_carries_its_region(env: Env, fakes: Fakes, admin: dict[str, str]) -> None:
    """region goes to the service with the identifier."""
    status, _, body = _create(
        env, admin, kind="access", subject={"kind": "phone", "value": "030 1234567", "region": "DE"}
    )
    assert status == 201, body
    assert _last(fakes)[1:] == (
        ("access", "phone", "030 1234567"),
        {"actor": "client:privacy-desk", "region": "DE", "corrections": None, "systems": None},
    )


def test_extension_confirmation_export_and_receipt(
    env: Env, fakes: Fakes, admin: dict[str, str]
) -> None:
    """Each step reaches the service with the actor; the receipt is 404 until closed."""
    _, _, created = _create(env, admin, kind="export")
    base = f"{PREFIX}/requests/{created['id']}"
    status, headers, body = env.request("GET", f"{base}/receipt", admin)
    assert (status, body["type"]) == (404, "urn:interlock:problem:not-found")
    assert "not closed" in body["detail"]
    status, headers, body = env.request(
        "POST",
        f"{base}/extension",
        {**admin, **JSON},
        json.dumps({"months": 2, "reason": "complex request, many systems"}).encode(),
    )
    assert (status, body["deadline_months"]) == (200, 3), body
    assert _last(fakes) == (
        "extend",
        (created["id"],),
        {"months": 2, "reason": "complex request, many systems", "actor": "client:privacy-desk"},
    )
    status, headers, bundle = env.request("GET", f"{base}/export", admin)
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert headers["content-disposition"] == f'attachment; filename="{created["id"]}-export.json"'
    assert headers["cache-control"] == "no-store"
    assert bundle == {"request": created["id"], "sources": [{"system": "erp", "records": 2}]}
    status, _, body = env.request(
        "POST",
        f"{base}/confirmations",
        {**admin, **JSON},
        json.dumps({"system": "erp", "status": "done", "note": "erased by hand"}).encode(),
    )
    assert (status, body["status"], body["systems"]["erp"]) == (200, "closed", "done")
    assert _last(fakes) == (
        "confirm",
        (created["id"], "erp", "done"),
        {"actor": "client:privacy-desk", "note": "erased by hand"},
    )
    status, headers, receipt = env.request("GET", f"{base}/receipt", admin)
    assert (status, receipt) == (200, {"request": created["id"], "signature": "sig"})
    assert headers["cache-control"] == "no-store"
    # Closed: the service refuses an extension, the API says why (400).
    status, _, body = env.request(
        "POST",
        f"{base}/extension",
        {**admin, **JSON},
        json.dumps({"months": 1, "reason": "late"}).encode(),
    )
    assert (status, body["type"]) == (400, "urn:interlock:problem:invalid-request")
    assert body["detail"] == "a closed request cannot be extended"


def test_trace_takes_the_identifier_in_the_body(
    env: Env, fakes: Fakes, admin: dict[str, str]
) -> None:
    """POST /v1/privacy/trace: the report; a GET (an identifier in the URL) is 405."""
    document = {"subject": {"kind": "email", "value": SUBJECT}}
    status, headers, body = env.request(
        "POST", f"{PREFIX}/trace", {**admin, **JSON}, json.dumps(document).encode()
    )
    assert (status, body) == (200, {"systems": [{"system": "erp"}]})
    assert headers["cache-control"] == "no-store"
    assert fakes.tracer.traced[-1] == ("email", SUBJECT, None)
    traced = len(fakes.tracer.traced)
    status, headers, _ = env.request(
        "GET", f"{PREFIX}/trace?{urlencode({'email': SUBJECT})}", admin
    )
    assert (status, headers["allow"]) == (405, "POST")
    status, _, body = env.request(
        "GET", f"{PREFIX}/requests?{urlencode({'subject': SUBJECT})}", admin
    )
    assert (status, body["type"]) == (400, "urn:interlock:problem:invalid-parameter")
    assert SUBJECT not in json.dumps(body)
    assert len(fakes.tracer.traced) == traced


@pytest.mark.parametrize(
    ("document", "status", "kind", "field"),
    [
        ({"kind": "delete", "subject": {"kind": "email", "value": SUBJECT}}, 422, "schema", "kind"),
        ({"kind": "erase", "subject": {"kind": "email"}}, 422, "schema", "subject.value"),
        ({"kind": "erase", "subject": {"kind": "Email!", "value": SUBJECT}}, 422, "schema", None),
        ({"kind": "erase", "subject": {"kind": "email", "value": ""}}, 422, "schema", None),
        ({"kind": "erase", "subject": {"kind": "email", "value": 7}}, 422, "schema", None),
        (
            {"kind": "erase", "subject": {"kind": "email", "value": SUBJECT}, SUBJECT: 1},
            422,
            "schema",
            "body",
        ),
        (
            {"kind": "erase", "subject": {"kind": "email", "value": SUBJECT, "name": "Ada"}},
            422,
            "schema",
            "subject",
        ),
        ({"kind": "rectify", "subject": {"kind": "email", "value": SUBJECT}}, 422, "schema", None),
        (
            {
                "kind": "erase",
                "subject": {"kind": "email", "value": SUBJECT},
                "corrections": {"name": "x"},
            },
            422,
            "schema",
            "corrections",
        ),
        (
            {
                "kind": "rectify",
                "subject": {"kind": "email", "value": SUBJECT},
                "corrections": {SUBJECT: "x"},
            },
            422,
            "schema",
            "corrections.*",
        ),
        (
            {"kind": "erase", "subject": {"kind": "email", "value": SUBJECT}, "systems": ["ERP!"]},
            422,
            "schema",
            None,
        ),
        ({"kind": "erase", "subject": {"kind": "email", "value": "x" * 40000}}, 413, "size", None),
        ("not json " + SUBJECT, 400, "malformed", None),
        # A key named twice: the service took the last ("erase") where a ticketing
        # system, a proxy or a reviewer reading the first sees "access".
        (
            '{"kind": "access", "kind": "erase", "subject": {"kind": "email", "value": '
            + json.dumps(SUBJECT)
            + "}}",
            400,
            "duplicate",
            None,
        ),
        (
            '{"kind": "erase", "subject": {"kind": "email", "value": "ada@example.com", '
            + f'"value": {json.dumps(SUBJECT)}}}}}',
            400,
            "duplicate",
            None,
        ),
        (  # the duplicate key is the person's identifier: never echoed
            '{"kind": "rectify", "subject": {"kind": "email", "value": "ada@example.com"}, '
            + f'"corrections": {{{json.dumps(SUBJECT)}: "a", {json.dumps(SUBJECT)}: "b"}}}}',
            400,
            "duplicate",
            None,
        ),
        ([SUBJECT], 422, "schema", "body"),
    ],
)
def test_bad_bodies_are_problems_naming_the_field_never_the_identifier(  # noqa: PLR0917
    env: Env,
    fakes: Fakes,
    admin: dict[str, str],
    document: Any,
    status: int,
    kind: str,
    field: str | None,
) -> None:
    """400/413/422 problem documents; nothing reaches the service; SUBJECT not echoed."""
    raw = document.encode() if isinstance(document, str) else json.dumps(document).encode()
    before = len(fakes.requests.calls)
    got, headers, body = env.request("POST", f"{PREFIX}/requests", {**admin, **JSON}, raw)
    assert got == status, body
    assert headers["content-type"].startswith("application/problem+json")
    assert (
        body["type"]
        == {
            "schema": "urn:interlock:problem:schema-violation",
            "size": "urn:interlock:problem:body-too-large",
            "malformed": "urn:interlock:problem:malformed-body",
            "duplicate": "urn:interlock:problem:duplicate-key",
        }[kind]
    )
    if field is not None:
        assert field in [error["field"] for error in body["errors"]], body
    assert SUBJECT not in json.dumps(body)
    assert len(fakes.requests.calls) == before


def test_an_identifier_the_service_refuses_is_not_echoed(env: Env, admin: dict[str, str]) -> None:
    """The service's ValueError quotes the input: the answer names the field instead."""
    marker = "not-an-address-" + secrets.token_hex(4)
    status, headers, body = _create(env, admin, subject={"kind": "email", "value": marker})
    assert (status, body["type"]) == (422, "urn:interlock:problem:schema-violation")
    assert body["errors"] == [
        {"field": "subject.value", "message": "not a valid identifier of this kind"}
    ]
    assert marker not in json.dumps(body)
    (entry,) = env.audit_entries(headers["x-request-id"], "gateway.request")  # written by now
    assert entry["reason"] == "privacy api: identifier refused"
    assert marker not in env.logs.getvalue()
    assert marker not in _audit_bodies(env)


def test_other_media_types_are_refused_with_415(env: Env, admin: dict[str, str]) -> None:
    """Only application/json bodies."""
    status, _, body = env.request(
        "POST", f"{PREFIX}/trace", {**admin, **FORM}, urlencode({"value": "x"}).encode()
    )
    assert (status, body["type"]) == (415, "urn:interlock:problem:unsupported-media-type")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", f"{PREFIX}/requests/dsr_{'A' * 24}", 404),
        ("GET", f"{PREFIX}/requests/dsr_{'A' * 24}/export", 404),
        ("POST", f"{PREFIX}/requests/dsr_{'A' * 24}/extension", 404),
        ("GET", f"{PREFIX}/requests/not-an-id", 400),
        ("GET", f"{PREFIX}/requests/dsr_{'A' * 23}%2F", 400),
        ("GET", f"{PREFIX}/requests/dsr_{'A' * 24}/delete", 404),
        ("GET", f"{PREFIX}/elsewhere", 404),
        ("DELETE", f"{PREFIX}/requests/dsr_{'A' * 24}", 405),
        ("PUT", f"{PREFIX}/requests", 405),
        ("GET", f"{PREFIX}/requests/dsr_{'A' * 24}?x=1", 400),
    ],
)
def test_unknown_ids_and_paths(
    env: Env, admin: dict[str, str], method: str, path: str, status: int
) -> None:
    """An unknown id is 404, a malformed one 400, an unknown resource 404, a method 405."""
    body = json.dumps({"months": 1, "reason": "r"}).encode() if method == "POST" else None
    got, headers, problem = env.request(method, path, {**admin, **JSON}, body)
    assert got == status, problem
    assert headers["content-type"].startswith("application/problem+json")
    assert headers["cache-control"] == "no-store"


def _token(env: Env, client: str, secret: str, scope: str, resource: str) -> str:
    form = {"grant_type": "client_credentials", "scope": scope, "resource": resource}
    status, _, body = env.request(
        "POST", "/oauth2/token", {**FORM, **env.basic(secret, client)}, urlencode(form).encode()
    )
    assert status == 200, body
    value = str(body["access_token"])
    env.issued_tokens.append(value)
    return value


def test_an_unexpected_failure_is_a_500_whose_message_is_never_logged(
    env: Env, admin: dict[str, str]
) -> None:
    """The service's exception text (which may quote a person) stays out of logs and answers."""
    status, headers, body = env.request("GET", f"{PREFIX}/requests/{BROKEN}", admin)
    assert (status, body["type"]) == (500, "urn:interlock:problem:internal-error")
    (entry,) = env.audit_entries(headers["x-request-id"], "gateway.request")
    assert entry["reason"] == "privacy service failed (RuntimeError)"
    failures = [line for line in lines(env) if line.get("event") == "privacy service failed"]
    assert failures[-1]["error"] == "RuntimeError"
    assert any("test_privacy_api.py" in where for where in failures[-1]["where"])
    assert SUBJECT not in env.logs.getvalue()
    assert SUBJECT not in json.dumps(body)


def test_oauth_tokens_must_be_for_the_gateway(env: Env) -> None:
    """A token for the gateway (RFC 8707 resource: its issuer) works; one for a system is 401."""
    with env.client_secret("privacy-desk") as secret:
        issuer = f"https://127.0.0.1:{env.port}"
        ours = _token(env, "privacy-desk", secret, "privacy.admin", issuer)
        status, _, body = env.request(
            "GET", f"{PREFIX}/requests", {"Authorization": f"Bearer {ours}"}
        )
        assert status == 200, body
    with env.client_secret("oauth-only") as secret:
        erp = env.gateway.gateway.manifest.systems["erp"].url.rstrip("/")
        theirs = _token(env, "oauth-only", secret, "orders.read", erp)
        status, headers, body = env.request(
            "GET", f"{PREFIX}/requests", {"Authorization": f"Bearer {theirs}"}
        )
        assert (status, body["type"]) == (401, "urn:interlock:problem:unauthorized")
        assert 'error="invalid_token"' in headers["www-authenticate"]


def test_every_call_is_one_audit_entry_naming_the_client_never_the_person(
    env: Env, admin: dict[str, str]
) -> None:
    """gateway.request as client:privacy-desk with the route template; SUBJECT nowhere."""
    status, headers, body = _create(env, admin)
    assert status == 201
    (entry,) = env.audit_entries(headers["x-request-id"], "gateway.request")
    assert entry["actor"] == "client:privacy-desk"
    assert entry["details"]["route"] == "/v1/privacy/requests"
    assert entry["details"]["credential"].startswith("api-key ")
    assert entry["outcome"]["status"] == 201
    status, headers, _ = env.request("GET", f"{PREFIX}/requests/{body['id']}/export", admin)
    (entry,) = env.audit_entries(headers["x-request-id"], "gateway.request")
    assert entry["details"]["route"] == "/v1/privacy/requests/{id}/export"
    assert body["id"] not in json.dumps(entry)
    status, headers, _ = env.request("GET", f"{PREFIX}/requests")
    assert status == 401
    (entry,) = env.audit_entries(headers["x-request-id"], "gateway.request")
    assert (entry["actor"], entry["outcome"]["status"]) == ("anonymous", 401)
    token, _ = env.key(["orders.read"])
    status, headers, _ = env.request("GET", f"{PREFIX}/requests", {"X-API-Key": token})
    (entry,) = env.audit_entries(headers["x-request-id"], "gateway.request")
    assert (entry["actor"], entry["outcome"]["status"]) == ("client:order-sync", 403)
    # Everything this module sent (creates, traces, bad bodies, a query) left no trace of SUBJECT.
    assert SUBJECT not in _audit_bodies(env)
    assert SUBJECT not in env.logs.getvalue()


def test_the_due_work_runs_in_the_background_and_survives_a_failure(env: Env, fakes: Fakes) -> None:
    """run_due is called every few moments; a failure is logged by type, and the next run comes."""
    requests = fakes.requests
    with requests.lock:
        requests.fail_next_due = True
        seen = requests.due_runs
    deadline = time.monotonic() + 10
    while requests.due_runs < seen + 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert requests.due_runs >= seen + 3
    assert not requests.fail_next_due
    logs = env.logs.getvalue()
    assert "privacy due work failed" in logs
    assert "RuntimeError" in logs
    assert SUBJECT not in logs


def test_the_service_is_built_for_the_manifest_served(env: Env, fakes: Fakes) -> None:
    """The factory saw the gateway's manifest; a reload builds the API afresh."""
    assert fakes.manifests[-1] is env.gateway.gateway.manifest
    count = len(fakes.manifests)
    assert env.gateway.reload()
    assert len(fakes.manifests) == count + 1
    assert fakes.manifests[-1] is env.gateway.gateway.manifest


def test_labels_name_templates_never_ids() -> None:
    """Metrics and the audit trail see the template of each resource."""
    request_id = "dsr_" + "a" * 24
    assert label("/v1/privacy/requests") == "/v1/privacy/requests"
    assert label("/v1/privacy/trace") == "/v1/privacy/trace"
    assert label(f"/v1/privacy/requests/{request_id}") == "/v1/privacy/requests/{id}"
    assert label(f"/v1/privacy/requests/{request_id}/receipt") == (
        "/v1/privacy/requests/{id}/receipt"
    )
    assert label("/v1/privacy/requests/x/y/z") == "/v1/privacy/{path}"


def test_the_harness_erp_takes_requests_signed_with_the_gateways_key(env: Env) -> None:
    """The sample ERP process trusts the deployment's JWKS: the webhook connector's key."""
    keys = SigningKeys(
        env.deployment.engine, env.deployment.keyring, env.deployment.settings.oauth_signing_alg
    )
    key = keys.signer()
    port = int(env.gateway.gateway.manifest.systems["erp"].url.rsplit(":", 1)[1])
    body = json.dumps(
        {
            "request_id": "dsr_" + "h" * 24,
            "action": "access",
            "subject": {"kind": "email", "value": "grace@example.com"},
        }
    ).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": secrets.token_hex(8)}
    assert isinstance(key.key, ECKey)  # the harness's default, ES256
    signed = RequestSigner(key.kid, key.key).sign(
        "POST", f"https://127.0.0.1:{port}/privacy/requests", headers, body
    )
    # The first signed request waits for the ERP's verifier import: generous on a busy machine.
    status, _, answer = env.request(
        "POST", "/privacy/requests", headers | signed, body, port=port, timeout=120
    )
    assert (status, answer["status"], answer["records"]) == (200, "done", 2), answer
    other = ECKey.generate_key("P-256", private=True)
    forged = RequestSigner(key.kid, other).sign(
        "POST", f"https://127.0.0.1:{port}/privacy/requests", headers, body
    )
    status, _, _ = env.request("POST", "/privacy/requests", headers | forged, body, port=port)
    assert status == 401
