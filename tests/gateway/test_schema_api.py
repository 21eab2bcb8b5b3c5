"""``/v1/schemas``: the Confluent Schema Registry REST subset, as a Confluent client speaks it.

Requests and answers follow Confluent's documented shapes (Schema Registry API
reference): ``POST /subjects/{s}/versions`` with ``{"schema": "<json string>",
"schemaType": "JSON"}`` answers ``{"id": n}``, errors carry ``error_code`` and
``message`` (and, here, the RFC 9457 members as well).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Final

import pytest

from interlock.config.manifest import Client, Integration, Manifest, Role
from interlock.config.messaging import Broker
from interlock.identity.apikeys import ApiKeys
from interlock.testing.gateway import Env

CONFLUENT: Final = "application/vnd.schemaregistry.v1+json"
SUBJECTS: Final = ("shop.order", "shop.refund", "shop.invoice", "shop.mode", "shop.check")


def _with_events(manifest: Manifest) -> Manifest:
    """The test gateway's manifest plus an event-streaming integration and schema clients."""
    system = next(iter(manifest.systems))
    consumer = "crm-sync"
    flow = Integration.model_validate(
        {
            "type": "event_streaming",
            "source": system,
            "target": system,
            "client": "order-sync",
            "purpose": "Events for the schema registry test",
            "legal_basis": "contract",
            "retention": "P1D",
            "events": {
                "broker": "bus",
                "destination": "shop",
                "subjects": {name: {"compatibility": "BACKWARD"} for name in SUBJECTS},
                "consumers": {consumer: {"shop.order": {}}},
                "dead_letter": {"role": "privacy-admin"},
            },
        }
    )
    broker = Broker.model_validate(
        {"kind": "nats", "url": "tls://nats.internal:4222", "location": "DE"}
    )
    writer = ["schemas.read", "schemas.write"]
    roles = {
        "schema-admin": Role.model_validate({"scopes": [*writer, "schemas.admin"]}),
        "schema-writer": Role.model_validate({"scopes": writer}),
        "schema-reader": Role.model_validate({"scopes": ["schemas.read"]}),
    }
    producer = manifest.clients["order-sync"]  # shop-events' client: its subjects' producer
    clients = {
        "schema-admin": Client.model_validate({"auth": ["api_key"], "roles": ["schema-admin"]}),
        "schema-writer": Client.model_validate({"auth": ["api_key"], "roles": ["schema-writer"]}),
        "schema-reader": Client.model_validate({"auth": ["api_key"], "roles": ["schema-reader"]}),
        "order-sync": producer.model_copy(update={"roles": [*producer.roles, "schema-writer"]}),
    }
    return manifest.model_copy(
        update={
            "integrations": {**manifest.integrations, "shop-events": flow},
            "brokers": {"bus": broker},
            "roles": {**manifest.roles, **roles},
            "clients": {**manifest.clients, **clients},
        }
    )


@pytest.fixture
def keys(env: Env) -> Iterator[dict[str, dict[str, str]]]:
    """The gateway serving the extended manifest; an API key header per schema client."""
    running = env.gateway
    manifest = running.gateway.manifest
    extended = _with_events(manifest)
    running.replace(extended)
    issuer = ApiKeys(env.deployment.engine, env.deployment.keyring, extended)
    headers: dict[str, dict[str, str]] = {}
    for client in ("schema-admin", "schema-writer", "schema-reader", "order-sync"):
        issued = issuer.create(client)
        env.issued_tokens.append(issued.token)
        headers[client] = {"X-API-Key": issued.token, "Accept": CONFLUENT}
    try:
        yield headers
    finally:
        running.replace(manifest)


def _order(**extra: Any) -> dict[str, Any]:
    properties = {"id": {"type": "string"}, "total": {"type": "number"}, **extra}
    return {
        "type": "object",
        "properties": properties,
        "required": ["id"],
        "additionalProperties": False,
    }


def _body(schema: dict[str, Any]) -> bytes:
    """Confluent's register / check body: the schema as a JSON string, and its type."""
    return json.dumps({"schema": json.dumps(schema), "schemaType": "JSON"}).encode()


def _call(
    env: Env, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, dict[str, str], Any]:
    sent = dict(headers)
    if body is not None:
        sent["Content-Type"] = CONFLUENT
    return env.request(method, "/v1/schemas" + path, sent, body)


def test_register_and_fetch_as_a_confluent_client(
    env: Env, keys: dict[str, dict[str, str]]
) -> None:
    """Register two versions, then read them back by subject, version, latest and id."""
    admin = keys["schema-admin"]
    status, headers, first = _call(
        env, "POST", "/subjects/shop.order/versions", admin, _body(_order())
    )
    assert status == 200, first
    assert headers["content-type"].startswith(CONFLUENT)
    assert set(first) == {"id"}
    assert isinstance(first["id"], int)
    v2 = _order(note={"type": "string"})
    status, _, second = _call(env, "POST", "/subjects/shop.order/versions", admin, _body(v2))
    assert status == 200, second
    assert second["id"] != first["id"]
    # Registering it again: the same id, no new version.
    assert _call(env, "POST", "/subjects/shop.order/versions", admin, _body(v2))[2] == second

    status, _, subjects = _call(env, "GET", "/subjects", admin)
    assert status == 200
    assert "shop.order" in subjects
    assert _call(env, "GET", "/subjects/shop.order/versions", admin)[2] == [1, 2]
    status, _, latest = _call(env, "GET", "/subjects/shop.order/versions/latest", admin)
    assert status == 200, latest
    assert {k: latest[k] for k in ("subject", "version", "id", "schemaType")} == {
        "subject": "shop.order",
        "version": 2,
        "id": second["id"],
        "schemaType": "JSON",
    }
    assert json.loads(latest["schema"]) == v2
    one = _call(env, "GET", "/subjects/shop.order/versions/1", admin)[2]
    assert json.loads(one["schema"]) == _order()
    assert _call(env, "GET", "/subjects/shop.order/versions/1/schema", admin)[2] == _order()
    status, _, by_id = _call(env, "GET", f"/schemas/ids/{first['id']}", admin)
    assert status == 200, by_id
    assert json.loads(by_id["schema"]) == _order()
    assert by_id["schemaType"] == "JSON"
    status, _, found = _call(env, "POST", "/subjects/shop.order", admin, _body(_order()))
    assert (status, found["version"], found["id"]) == (200, 1, first["id"])


def test_an_incompatible_schema_is_a_409_both_kinds_of_client_understand(
    env: Env, keys: dict[str, dict[str, str]]
) -> None:
    """409: Confluent's error_code and message, the problem members, and every incompatibility."""
    admin = keys["schema-admin"]
    assert _call(env, "POST", "/subjects/shop.refund/versions", admin, _body(_order()))[0] == 200
    narrowed = _order(total={"type": "integer"})
    status, headers, problem = _call(
        env, "POST", "/subjects/shop.refund/versions", admin, _body(narrowed)
    )
    assert status == 409, problem
    assert headers["content-type"].startswith("application/problem+json")
    assert problem["error_code"] == 409
    assert problem["message"] == problem["detail"]
    assert problem["type"].endswith("incompatible-schema")
    assert problem["status"] == 409
    assert [(e["pointer"], e["kind"]) for e in problem["errors"]] == [
        ("/properties/total/type", "TYPE_NARROWED")
    ], problem["errors"]
    assert _call(env, "GET", "/subjects/shop.refund/versions", admin)[2] == [1]


def test_compatibility_check_with_verbose_messages(
    env: Env, keys: dict[str, dict[str, str]]
) -> None:
    """POST /compatibility/...: is_compatible, and messages with ?verbose=true; a reader may ask."""
    admin, reader = keys["schema-admin"], keys["schema-reader"]
    _call(env, "POST", "/subjects/shop.check/versions", admin, _body(_order()))
    path = "/compatibility/subjects/shop.check/versions/latest"
    assert _call(env, "POST", path, reader, _body(_order(note={"type": "string"})))[2] == {
        "is_compatible": True
    }
    narrowed = _body(_order(total={"type": "integer"}))
    assert _call(env, "POST", path, reader, narrowed)[2] == {"is_compatible": False}
    status, _, verbose = _call(env, "POST", path + "?verbose=true", reader, narrowed)
    assert status == 200
    assert verbose["is_compatible"] is False
    assert verbose["messages"]
    assert "/properties/total" in verbose["messages"][0]


def test_the_mode_is_read_and_set_through_config(env: Env, keys: dict[str, dict[str, str]]) -> None:
    """GET /config/{s} the manifest's mode; PUT sets another; an unknown mode is 42203."""
    admin = keys["schema-admin"]
    assert _call(env, "GET", "/config/shop.mode", admin)[2] == {"compatibilityLevel": "BACKWARD"}
    body = json.dumps({"compatibility": "FULL_TRANSITIVE"}).encode()
    status, _, answer = _call(env, "PUT", "/config/shop.mode", admin, body)
    assert (status, answer) == (200, {"compatibility": "FULL_TRANSITIVE"})
    assert _call(env, "GET", "/config/shop.mode", admin)[2] == {
        "compatibilityLevel": "FULL_TRANSITIVE"
    }
    bad = json.dumps({"compatibility": "SIDEWAYS"}).encode()
    status, _, problem = _call(env, "PUT", "/config/shop.mode", admin, bad)
    assert (status, problem["error_code"]) == (422, 42203)


@pytest.mark.parametrize(
    ("path", "status", "error_code"),
    [
        ("/subjects/invoice.paid/versions", 404, 40401),  # not declared
        ("/subjects/shop.invoice/versions/latest", 404, 40401),  # declared, nothing registered
        ("/subjects/Not%20A%20Subject/versions", 404, 40401),
        ("/subjects/shop.order/versions/99", 404, 40402),
        ("/subjects/shop.order/versions/0", 422, 42202),
        ("/subjects/shop.order/versions/first", 422, 42202),
        ("/schemas/ids/987654", 404, 40403),
        ("/nothing/here", 404, 404),
    ],
)
def test_lookups_that_fail_carry_confluents_error_codes(
    env: Env, keys: dict[str, dict[str, str]], path: str, status: int, error_code: int
) -> None:
    """Each failure's status and Confluent error code, in an RFC 9457 problem."""
    admin = keys["schema-admin"]
    _call(env, "POST", "/subjects/shop.order/versions", admin, _body(_order()))
    found, headers, problem = _call(env, "GET", path, admin)
    assert (found, problem["error_code"]) == (status, error_code), problem
    assert problem["status"] == status
    assert problem["message"] == problem["detail"]
    assert headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "body",
    [
        {"schema": json.dumps({"type": "objekt"}), "schemaType": "JSON"},
        {"schema": "{not json", "schemaType": "JSON"},
        {"schema": json.dumps({"type": "object"})},  # Confluent's default type is Avro
        {"schema": json.dumps({"type": "object"}), "schemaType": "AVRO"},
        {"schema": json.dumps({"$ref": "https://evil.example/s.json"}), "schemaType": "JSON"},
        {"schema": json.dumps({"type": "object"}), "schemaType": "JSON", "references": [{}]},
    ],
)
def test_an_invalid_schema_is_42201(
    env: Env, keys: dict[str, dict[str, str]], body: dict[str, Any]
) -> None:
    """Not a 2020-12 schema, not JSON, not JSON Schema, remote references: 422 and 42201."""
    admin = keys["schema-admin"]
    raw = json.dumps(body).encode()
    status, _, problem = _call(env, "POST", "/subjects/shop.invoice/versions", admin, raw)
    assert (status, problem["error_code"]) == (422, 42201), problem


def test_scopes_decide_who_reads_and_who_writes(env: Env, keys: dict[str, dict[str, str]]) -> None:
    """A reader may read but not register; without a credential nothing is answered."""
    reader = keys["schema-reader"]
    assert _call(env, "GET", "/subjects", reader)[0] == 200
    status, headers, problem = _call(
        env, "POST", "/subjects/shop.invoice/versions", reader, _body(_order())
    )
    assert (status, problem["required_scope"], problem["error_code"]) == (
        403,
        "schemas.write",
        403,
    )
    assert 'scope="schemas.write"' in headers["www-authenticate"]
    assert _call(env, "PUT", "/config/shop.invoice", reader, b'{"compatibility": "NONE"}')[0] == 403
    status, _, problem = _call(env, "GET", "/subjects", {"Accept": CONFLUENT})
    assert (status, problem["error_code"]) == (401, 401)


def test_requests_outside_the_subset_are_refused(env: Env, keys: dict[str, dict[str, str]]) -> None:
    """A wrong method, an unknown query parameter, another content type: refused, not ignored."""
    admin = keys["schema-admin"]
    assert _call(env, "DELETE", "/subjects/shop.order/versions", admin)[0] == 405
    assert _call(env, "GET", "/subjects?subjectPrefix=x", admin)[0] == 400
    status, _, _ = env.request(
        "POST",
        "/v1/schemas/subjects/shop.order/versions",
        {**admin, "Content-Type": "text/plain"},
        _body(_order()),
    )
    assert status == 415


def test_without_event_subjects_there_is_no_registry(env: Env) -> None:
    """The test gateway's own manifest declares no subject: /v1/schemas is not served."""
    status, _, _ = env.request("GET", "/v1/schemas/subjects")
    assert status == 404


def test_only_a_subjects_producer_or_an_admin_registers_it(
    env: Env, keys: dict[str, dict[str, str]]
) -> None:
    """A subject belongs to its integration: schemas.write alone does not let another
    integration's client (or none's) register versions on it."""
    refused = _body(_order(by_writer={"type": "boolean"}))
    path = "/subjects/shop.refund/versions"
    status, _, problem = _call(env, "POST", path, keys["schema-writer"], refused)
    assert (status, problem["error_code"]) == (403, 403), problem
    assert problem["type"].endswith("access-denied")
    lookup = _call(env, "POST", "/subjects/shop.refund", keys["schema-admin"], refused)
    assert lookup[0] == 404  # not registered
    status, _, answer = _call(env, "POST", path, keys["order-sync"], _body(_order()))
    assert status == 200, answer
    extra = _body(_order(by_admin={"type": "string"}))
    status, _, answer = _call(env, "POST", path, keys["schema-admin"], extra)
    assert status == 200, answer


@pytest.mark.parametrize("client", ["order-sync", "schema-writer"])
def test_a_subjects_compatibility_mode_is_the_admins_to_change(
    env: Env, keys: dict[str, dict[str, str]], client: str
) -> None:
    """Setting NONE would let a producer register what breaks every consumer: a producer
    (or any writer) is refused; the mode stays as it was."""
    body = json.dumps({"compatibility": "NONE"}).encode()
    status, headers, problem = _call(env, "PUT", "/config/shop.check", keys[client], body)
    assert (status, problem["required_scope"]) == (403, "schemas.admin"), problem
    assert 'scope="schemas.admin"' in headers["www-authenticate"]
    assert _call(env, "GET", "/config/shop.check", keys[client])[2] == {
        "compatibilityLevel": "BACKWARD"
    }
