"""What the producer, consumer and dead-letter tests share: a manifest, keys, waiting."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from interlock.audit.sink import MemorySink
from interlock.clock import Clock, utc_now
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.config.settings import Settings
from interlock.messaging.consumer import Consumer, Message
from interlock.messaging.envelope import open_envelope, seal
from interlock.messaging.keys import MessagingKeys
from interlock.messaging.memory import MemoryBroker, MemoryServer
from interlock.messaging.model import Delivery, MessageFacts, Opened, Outgoing, Topology
from interlock.messaging.producer import Producer
from interlock.replay.idempotency import MemoryIdempotency
from interlock.store import Deployment, initialise
from interlock.testing.clock import ManualClock

INTEGRATION = "order-events"
PRODUCER = "erp-publisher"
CRM = "crm-consumer"
BILLING = "billing-consumer"
EMAIL = "ada@example.com"
PAYLOAD: dict[str, Any] = {
    "id": "o-1",
    "note": "leave at the door",
    "customer": {"email": EMAIL, "name": "Ada Lovelace"},
}
#: What a consumer receives of PAYLOAD: the manifest's fields are id and customer.email.
MINIMISED: dict[str, Any] = {"id": "o-1", "customer": {"email": EMAIL}}

_MANIFEST: dict[str, Any] = {
    "version": 1,
    "systems": {
        "erp": {"url": "https://erp.example:9443", "location": "DE"},
        "crm": {"url": "https://crm.example", "location": "DE"},
    },
    "brokers": {
        "bus": {
            "kind": "rabbitmq",
            "url": "amqps://interlock@rabbit.internal:5671/",
            "location": "DE",
        }
    },
    "roles": {
        "dlq-handler": {"scopes": ["messaging.dead_letters"]},
        "reporting": {"scopes": ["orders.read"]},
    },
    "clients": {PRODUCER: {"auth": ["mtls"]}, CRM: {"auth": ["mtls"]}, BILLING: {"auth": ["mtls"]}},
    "operators": {"alice": {"roles": ["dlq-handler"]}, "bob": {"roles": ["reporting"]}},
    "integrations": {
        INTEGRATION: {
            "type": "messaging",
            "source": "erp",
            "target": "crm",
            "client": PRODUCER,
            "purpose": "Tell the CRM about confirmed orders",
            "legal_basis": "contract",
            "data_categories": ["user.contact.email"],
            "data_subjects": ["customer"],
            "retention": "P30D",
            "messaging": {
                "broker": "bus",
                "destination": "orders",
                "consumers": [CRM, BILLING],
                "encrypt": "payload",
                "field_categories": {"customer.email": "user.contact.email"},
                "schema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "note": {"type": "string"},
                        "customer": {
                            "type": "object",
                            "properties": {"email": {"type": "string"}, "name": {"type": "string"}},
                        },
                    },
                    "required": ["id"],
                    "additionalProperties": False,
                },
                "fields": ["id", "customer.email"],
                "dead_letter": {"role": "dlq-handler", "retention": "P7D"},
            },
        }
    },
}


def make_manifest(
    directory: Path,
    *,
    encrypt: str = "payload",
    consumers: tuple[str, ...] = (CRM, BILLING),
    broker: tuple[str, str] | None = None,
    destination: str = "orders",
    ttl: str | None = None,
    key_window: str | None = "5m",
) -> Manifest:
    """The test manifest, validated as ``interlock validate`` does, with a few choices.

    ``key_window=None``: a key agreement per message (``key_window: null``).
    """
    document = copy.deepcopy(_MANIFEST)
    spec = document["integrations"][INTEGRATION]["messaging"]
    spec.update(encrypt=encrypt, consumers=list(consumers), destination=destination)
    if ttl is not None:
        spec["ttl"] = ttl
    spec["key_window"] = key_window
    if broker is not None:
        document["brokers"]["bus"].update(kind=broker[0], url=broker[1])
    path = directory / "manifest.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return load_manifest(path)


def delivery_of(message: Outgoing, *, body: bytes | None = None, count: int = 1) -> Delivery:
    """The delivery a broker would hand a consumer for ``message`` (``body`` to alter it)."""
    return Delivery(
        body=message.body if body is None else body,
        content_type=message.content_type,
        message_id=message.message_id,
        headers=dict(message.headers),
        redelivered=count > 1,
        delivery_count=count,
    )


async def eventually(condition: Callable[[], bool], *, within: float = 10.0) -> None:
    """Wait until ``condition()`` holds; fail the test after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("the condition did not become true in time")
        await asyncio.sleep(0.01)


@dataclasses.dataclass
class Rig:
    """A producer and the CRM consumer on one in-process broker, with what they recorded."""

    manifest: Manifest
    keys: MessagingKeys
    deployment: Deployment
    server: MemoryServer
    audit: MemorySink
    dedup: MemoryIdempotency
    clock: ManualClock
    handled: list[Message] = dataclasses.field(default_factory=list)
    calls: Counter[str] = dataclasses.field(default_factory=Counter)

    def producer(self) -> Producer:
        return Producer(
            self.manifest,
            INTEGRATION,
            keys=self.keys,
            broker=MemoryBroker(self.server),
            audit=self.audit,
            now=self.clock,
        )

    def consumer(
        self, name: str = CRM, *, broker: MemoryBroker | None = None, **options: Any
    ) -> Consumer:
        return Consumer(
            self.manifest,
            INTEGRATION,
            name,
            keys=self.keys,
            broker=broker or MemoryBroker(self.server),
            dedup=self.dedup,
            audit=self.audit,
            now=self.clock,
            **options,
        )

    async def handler(self, message: Message) -> None:
        self.calls[message.facts.message_id] += 1
        self.handled.append(message)

    def sealed(self, payload: Any = PAYLOAD, **facts: Any) -> Outgoing:
        """A message sealed directly (bypassing the producer's checks)."""
        issued = facts.pop("issued_at", self.clock())
        signer = facts.pop("signer", self.keys.signer(INTEGRATION, PRODUCER))
        values = {
            "message_id": "m-1",
            "integration": INTEGRATION,
            "producer": PRODUCER,
            "issued_at": issued,
            "expires_at": issued + timedelta(hours=1),
        }
        values.update(facts)
        return seal(
            payload,
            MessageFacts(**values),
            signer=signer,
            recipients=self.keys.recipients(INTEGRATION, [CRM, BILLING]),
        )

    def opened(self, message: Outgoing) -> Opened:
        """``message`` as the CRM consumer opens it now, with no leeway (every check run)."""
        return open_envelope(
            message.body,
            message.content_type,
            integration=INTEGRATION,
            producer=PRODUCER,
            encrypt="payload",
            verification_keys=self.keys.verification_keys(INTEGRATION, PRODUCER),
            decryption_keys=self.keys.decryption_keys(INTEGRATION, CRM),
            now=self.clock(),
            leeway=timedelta(0),
            max_bytes=1 << 20,
        )

    @property
    def topology(self) -> Topology:
        return self.consumer()._flow.topology

    def refusals(self) -> list[tuple[str | None, str | None]]:
        return [(e.action, e.reason) for e in self.audit.entries if e.action == "messaging.refuse"]


def open_keys(deployment: Deployment, manifest: Manifest, now: Clock = utc_now) -> MessagingKeys:
    """The integration's real keys in ``deployment``'s store; a rotation takes effect at once."""
    keys = MessagingKeys(deployment.engine, deployment.keyring, now=now, publish_ahead=timedelta(0))
    keys.ensure(manifest)
    return keys


def open_deployment(directory: Path) -> Deployment:
    """A deployment (keyring and store) on a SQLite file in ``directory``."""
    return initialise(
        Settings(data_dir=directory / "data", database_url=f"sqlite:///{directory / 'store.db'}")
    )


@contextmanager
def rig_for(directory: Path, **manifest_options: Any) -> Iterator[Rig]:
    """A rig on the test manifest (``manifest_options`` as for :func:`make_manifest`)."""
    clock = ManualClock()
    manifest = make_manifest(directory, **manifest_options)
    deployment = open_deployment(directory)
    try:
        yield Rig(
            manifest,
            open_keys(deployment, manifest, clock),
            deployment,
            MemoryServer(now=clock),
            MemorySink(),
            MemoryIdempotency(now=clock),
            clock,
        )
    finally:
        deployment.close()
