"""The manifest's messaging sections: brokers, and what a messaging integration declares.

A broker is infrastructure every messaging integration on it shares (RabbitMQ
or NATS JetStream), reached over TLS only, trusted like a system
(``ca: system | pki:NAME | file:PATH``), with credentials by reference and,
optionally, a client certificate from Interlock's PKI (``client_cert:
pki:auto``). Its ``location`` matters to the register: messages rest there.

An integration of ``type: messaging`` carries a ``messaging:`` section: the
broker, the destination (a RabbitMQ topic exchange, a NATS subject prefix and
its stream), the consumers (clients of the manifest; the integration's
``client`` is the producer), how payloads are protected (the whole payload,
or only the fields of personal-data categories), the payload's JSON Schema,
what consumers receive (minimisation), expiry, queue bounds and the dead-letter
queue's retention and the role allowed to handle it (docs/messaging.md).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from interlock.config.units import ByteSize, Duration
from interlock.config.vocabulary import (
    Country,
    DataCategory,
    FieldPath,
    Name,
    Text,
    TlsPolicy,
    _Model,
    check_secret_reference,
    check_trust_anchor,
)

__all__ = [
    "BROKER_SCHEMES",
    "Broker",
    "BrokerKind",
    "DeadLetterPolicy",
    "Destination",
    "MessagingSpec",
]

BrokerKind = Literal["rabbitmq", "nats"]

#: The URL schemes of each broker kind: TLS only (``amqps``; ``tls`` is how NATS
#: clients are told to require TLS).
BROKER_SCHEMES: Final[dict[str, str]] = {"rabbitmq": "amqps", "nats": "tls"}

#: A RabbitMQ exchange or a NATS subject prefix (and stream name, upper-cased by the
#: adapter): letters, digits, '.', '_' and '-'; no wildcards.
Destination = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]


class Broker(_Model):
    """A message broker: RabbitMQ or NATS JetStream, over TLS, trusted like a system."""

    kind: BrokerKind
    url: str
    location: Country
    owner: Text | None = None
    ca: str = "system"
    # The broker password (the user name is the URL's, e.g. amqps://interlock@host/).
    credentials: str | None = None
    client_cert: Literal["pki:auto"] | None = None
    tls: TlsPolicy | None = None
    description: Text | None = None

    @field_validator("ca", mode="before")
    @classmethod
    def _trust_anchor(cls, value: object) -> object:
        return check_trust_anchor(value)

    @field_validator("credentials")
    @classmethod
    def _by_reference(cls, value: str | None) -> str | None:
        return check_secret_reference(value)

    @field_validator("url")
    @classmethod
    def _tls_url(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind")
        parts = urlsplit(value)
        scheme = BROKER_SCHEMES.get(str(kind))
        if scheme is not None and parts.scheme != scheme:
            raise ValueError(
                f"a {kind} broker's url uses {scheme}:// (got {parts.scheme or 'no'} "
                "scheme): messages cross the network, so the link to the broker is TLS, "
                "with the broker's certificate verified"
            )
        if not parts.hostname:
            raise ValueError("url has no host")
        if parts.password:
            raise ValueError(
                "url must not carry a password; name it with credentials: secret://..."
            )
        if parts.query or parts.fragment:
            raise ValueError("url must not have a query or fragment")
        if kind == "nats" and parts.path not in {"", "/"}:
            raise ValueError("a NATS url has no path")
        return value


class DeadLetterPolicy(_Model):
    """Where refused messages wait, still sealed, and who may handle them."""

    # A role of the manifest: operators holding it may list, show, replay and purge.
    role: Name
    retention: Duration = timedelta(days=7)
    max_length: int = Field(default=100_000, ge=1, le=100_000_000)


class MessagingSpec(_Model):
    """How a messaging integration's messages travel and are protected."""

    # ``schema`` in YAML (a BaseModel attribute name), ``schema_`` in Python and dumps.
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    broker: Name
    destination: Destination
    # Clients of the manifest that consume (each its own queue or durable consumer and
    # its own decryption key); the integration's client is the producer.
    consumers: tuple[Name, ...] = Field(min_length=1, max_length=32)
    # "payload": the signed message is encrypted whole (JWS nested in JWE); "fields":
    # the message is signed and only the fields of personal-data categories are
    # encrypted, each a JWE (field-level encryption).
    encrypt: Literal["payload", "fields"] = "payload"
    # The category of each payload field; with encrypt: fields, those under user.* are
    # encrypted. Also what the register and the audit entries report.
    field_categories: dict[FieldPath, DataCategory] = Field(default_factory=dict)
    # The payload's JSON Schema (2020-12), checked by the consumer before delivery.
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    # What consumers receive (minimisation): the payload filtered to these fields.
    fields: tuple[FieldPath, ...] | None = Field(default=None, min_length=1)
    key_algorithm: Literal["ECDH-ES+A256KW", "RSA-OAEP-256"] = "ECDH-ES+A256KW"
    signing_algorithm: Literal["ES256", "Ed25519"] = "ES256"
    key_rotation: Duration = timedelta(days=30)
    # A message expires this long after it was sealed (and leaves its queue).
    ttl: Duration = timedelta(hours=1)
    max_length: int = Field(default=100_000, ge=1, le=100_000_000)
    max_message: ByteSize = 256 * 1024
    dead_letter: DeadLetterPolicy

    @field_validator("consumers")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("consumers are listed once each")
        return value

    @field_validator("ttl")
    @classmethod
    def _expires(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(days=14):
            raise ValueError("ttl is between 1 second and 14 days")
        return value

    @model_validator(mode="after")
    def _fields_to_encrypt(self) -> MessagingSpec:
        if self.encrypt == "fields" and not self.encrypted_fields:
            raise ValueError(
                "encrypt: fields needs field_categories naming at least one field of a "
                "personal-data category (user.*); otherwise encrypt the payload"
            )
        return self

    @property
    def encrypted_fields(self) -> tuple[str, ...]:
        """With ``encrypt: fields``, the fields encrypted: those of personal-data categories."""
        if self.encrypt != "fields":
            return ()
        return tuple(
            path for path, category in self.field_categories.items() if category.startswith("user")
        )
