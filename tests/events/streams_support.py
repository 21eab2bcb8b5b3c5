"""What the event producer and consumer tests share: the manifest, the registry, schemas."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

from interlock.actors import Operator
from interlock.audit.sink import MemorySink
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.config.settings import Settings
from interlock.events.registry import SchemaRegistry
from interlock.messaging.model import Delivery, Outgoing
from interlock.store import Deployment, initialise

T = TypeVar("T")

#: The example manifest of the issue (an event-streaming integration), DESTINATION replaced.
MANIFEST: Final = """\
version: 1
organisation:
  controller: {name: Example GmbH, contact: privacy@example.com}
systems:
  erp: {url: "https://erp.example:9443", location: DE}
  crm: {url: "https://crm.example", location: DE}
brokers:
  stream: {kind: nats, url: "tls://nats.internal:4222", location: DE, client_cert: "pki:auto", ca: "pki:internal"}
roles:
  dlq-handler: {scopes: [messaging.dead_letters]}
  order-events-reader: {scopes: [events.order.created.read]}
  analytics-reader: {scopes: [events.order.created.read, events.order.cancelled.read]}
clients:
  erp-events: {auth: [mtls]}
  crm-events: {auth: [mtls], roles: [order-events-reader]}
  analytics: {auth: [mtls], roles: [analytics-reader]}
operators:
  alice: {roles: [dlq-handler]}
integrations:
  order-stream:
    type: event_streaming
    source: erp
    target: crm
    client: erp-events
    purpose: Order events for the CRM and analytics
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: P30D
    events:
      broker: stream
      destination: DESTINATION
      subjects:
        order.created:
          compatibility: BACKWARD
          field_categories: {customer.email: user.contact.email}
        order.cancelled: {compatibility: FULL}
      consumers:
        crm-events:
          order.created: {fields: [id, customer.email], filter: {region: EU}}
        analytics:
          order.created: {fields: [id, total, region]}
          order.cancelled: {}
      dead_letter: {role: dlq-handler}
"""
INTEGRATION: Final = "order-stream"
OPERATOR: Final = Operator("admin:test")

ORDER_CREATED: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "total": {"type": "number", "minimum": 0},
        "region": {"enum": ["EU", "US"]},
        "customer": {"$ref": "#/$defs/customer"},
    },
    "required": ["id", "total", "region", "customer"],
    "$defs": {
        "customer": {
            "type": "object",
            "properties": {
                "email": {"type": "string", "format": "email"},
                "name": {"type": "string"},
            },
            "required": ["email", "name"],
        }
    },
}
# order.cancelled: v1 closed (only the id), v2 adds an optional note with a default.
CANCELLED_V1: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {"id": {"type": "string"}},
    "required": ["id"],
    "additionalProperties": False,
}
CANCELLED_V2: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "note": {"type": "string", "default": "none"},
    },
    "required": ["id"],
    "additionalProperties": False,
}


def order(region: str = "EU", **changes: Any) -> dict[str, Any]:
    """A valid order.created event."""
    event: dict[str, Any] = {
        "id": "o-1",
        "total": 12.5,
        "region": region,
        "customer": {"email": "ada@example.com", "name": "Ada"},
        "note": "leave at the door",
    }
    event.update(changes)
    return event


def make_manifest(tmp_path: Path, destination: str = "orders", *, sealed: bool = False) -> Manifest:
    """The example manifest with its stream at ``destination`` (``sealed``: encrypt: payload)."""
    text = MANIFEST.replace("DESTINATION", destination)
    if sealed:
        text = text.replace(SEALED_AFTER, SEALED_AFTER + "      encrypt: payload\n")
    path = tmp_path / "interlock.yaml"
    path.write_text(text, encoding="utf-8")
    return load_manifest(path)


#: The line of MANIFEST after which ``encrypt: payload`` goes for a sealed stream.
SEALED_AFTER: Final = "      dead_letter: {role: dlq-handler}\n"


def make_deployment(tmp_path: Path) -> Deployment:
    """An initialised deployment on SQLite (the registry's store)."""
    return initialise(
        Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 's.db'}")
    )


def make_registry(deployment: Deployment, manifest: Manifest, audit: MemorySink) -> SchemaRegistry:
    """The registry with order.created v1 and order.cancelled v1 and v2 (mode NONE)."""
    registry = SchemaRegistry(deployment.engine, manifest, audit=audit)
    registry.register("order.created", ORDER_CREATED, actor=OPERATOR)
    registry.set_mode("order.cancelled", "NONE", actor=OPERATOR)
    registry.register("order.cancelled", CANCELLED_V1, actor=OPERATOR)
    registry.register("order.cancelled", CANCELLED_V2, actor=OPERATOR)
    return registry


def delivery_of(
    message: Outgoing, *, body: bytes | None = None, headers: Mapping[str, str] | None = None
) -> Delivery:
    """``message`` as a broker would deliver it (optionally with another body or headers)."""
    return Delivery(
        body=message.body if body is None else body,
        content_type=message.content_type,
        message_id=message.message_id,
        headers={**message.headers, **(headers or {})},
        redelivered=False,
        delivery_count=1,
    )


def run(scenario: Coroutine[Any, Any, T]) -> T:
    """Run one scenario on a fresh event loop."""
    return asyncio.run(scenario)


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until ``check()`` holds; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.02)
