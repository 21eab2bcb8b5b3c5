"""What the producer, consumer and dead-letter tests share: a manifest, keys, waiting."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from interlock.audit.sink import MemorySink
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.messaging.consumer import Consumer, Message
from interlock.messaging.envelope import seal
from interlock.messaging.memory import MemoryBroker, MemoryServer
from interlock.messaging.model import Delivery, MessageFacts, Outgoing, Topology
from interlock.messaging.producer import Producer
from interlock.replay.idempotency import MemoryIdempotency
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
) -> Manifest:
    """The test manifest, validated as ``interlock validate`` does, with a few choices."""
    document = copy.deepcopy(_MANIFEST)
    spec = document["integrations"][INTEGRATION]["messaging"]
    spec.update(encrypt=encrypt, consumers=list(consumers), destination=destination)
    if ttl is not None:
        spec["ttl"] = ttl
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


class StaticKeys:
    """Fixed keys with the part of MessagingKeys' interface the pipeline uses (until it lands)."""

    def __init__(self) -> None:
        self._signers: list[Any] = []
        self._consumers: dict[str, list[tuple[Any, Any]]] = {}
        self.rotate()

    def rotate(self) -> None:
        """New current keys for everyone; the old ones stay published and usable for opening."""
        from joserfc.jwk import ECKey

        from interlock.crypto.jose import generate_signing_key
        from interlock.messaging.envelope import SignerKey

        key = generate_signing_key("ES256")
        self._signers.append(SignerKey(kid=str(key.kid), alg="ES256", key=key))
        for name in (CRM, BILLING):
            private = ECKey.generate_key("P-256", private=True)
            private.ensure_kid()
            public = ECKey.import_key(private.as_dict(private=False))
            self._consumers.setdefault(name, []).append((private, public))

    def signer(self, integration: str, producer: str) -> Any:
        return self._signers[-1]

    def verification_keys(self, integration: str, producer: str) -> dict[str, Any]:
        from joserfc.jwk import ECKey

        return {s.kid: ECKey.import_key(s.key.as_dict(private=False)) for s in self._signers}

    def recipients(self, integration: str, consumers: Any) -> list[Any]:
        from interlock.messaging.envelope import RecipientKey

        return [
            RecipientKey(
                str(self._consumers[c][-1][1].kid), "ECDH-ES+A256KW", c, self._consumers[c][-1][1]
            )
            for c in consumers
        ]

    def decryption_keys(self, integration: str, consumer: str) -> dict[str, Any]:
        return {str(private.kid): private for private, _ in self._consumers[consumer]}


@dataclasses.dataclass
class Rig:
    """A producer and the CRM consumer on one in-process broker, with what they recorded."""

    manifest: Manifest
    keys: Any
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

    def consumer(self, name: str = CRM, **options: Any) -> Consumer:
        return Consumer(
            self.manifest,
            INTEGRATION,
            name,
            keys=self.keys,
            broker=MemoryBroker(self.server),
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

    @property
    def topology(self) -> Topology:
        return self.consumer()._flow.topology

    def refusals(self) -> list[tuple[str | None, str | None]]:
        return [(e.action, e.reason) for e in self.audit.entries if e.action == "messaging.refuse"]


def make_rig(directory: Path, **manifest: Any) -> Rig:
    """A rig on the test manifest (``manifest`` as for :func:`make_manifest`)."""
    clock = ManualClock()
    return Rig(
        make_manifest(directory, **manifest),
        StaticKeys(),
        MemoryServer(now=clock),
        MemorySink(),
        MemoryIdempotency(now=clock),
        clock,
    )
