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
    SecretRef,
    Text,
    TlsPolicy,
    TrustAnchor,
    _Model,
    check_secret_reference,
    check_trust_anchor,
)

#: The JWE key management algorithms of consumers' keys (messaging and sealed events).
KeyAlgorithm = Literal["ECDH-ES+A256KW", "RSA-OAEP-256"]
#: The JWS algorithms a producer signs with (messaging and sealed events).
SigningAlgorithm = Literal["ES256", "Ed25519"]
#: How long a window key serves by default, and at most (messaging and sealed events;
#: interlock.messaging.window_keys).
KEY_WINDOW: Final = timedelta(minutes=5)
MAX_KEY_WINDOW: Final = timedelta(days=1)

__all__ = [
    "BROKER_SCHEMES",
    "KEY_WINDOW",
    "Broker",
    "BrokerKind",
    "DeadLetterPolicy",
    "Destination",
    "KeyAlgorithm",
    "MessagingSpec",
    "SigningAlgorithm",
    "check_key_window",
]

BrokerKind = Literal["rabbitmq", "nats"]


def check_key_window(value: timedelta | None) -> timedelta | None:
    """A key_window of at most :data:`MAX_KEY_WINDOW` (None: a key agreement per message)."""
    if value is not None and value > MAX_KEY_WINDOW:
        raise ValueError("key_window is at most 1 day (null: a key agreement per message)")
    return value


#: The URL schemes of each broker kind: TLS only (``amqps``; ``tls`` is how NATS
#: clients are told to require TLS).
BROKER_SCHEMES: Final[dict[str, str]] = {"rabbitmq": "amqps", "nats": "tls"}

#: A RabbitMQ exchange or a NATS subject prefix (and stream name, upper-cased by the
#: adapter): letters, digits, '.', '_' and '-'; no wildcards.
Destination = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]


class Broker(_Model):
    """A message broker: RabbitMQ or NATS JetStream, over TLS, trusted like a system."""

    kind: BrokerKind = Field(description="rabbitmq or nats (JetStream).")
    url: str = Field(
        description=(
            "amqps:// (RabbitMQ) or tls:// (NATS); the user name may be in the URL, "
            "never the password."
        )
    )
    location: Country = Field(
        description="ISO 3166-1 country where the broker stores messages (for the register)."
    )
    owner: Text | None = Field(default=None, description="Who is responsible for the broker.")
    ca: TrustAnchor = Field(
        default="system",
        description=(
            "What the broker's TLS certificate must chain to: system, pki:NAME or file:PATH."
        ),
    )
    credentials: SecretRef | None = Field(
        default=None,
        description=("The broker password, as a secret:// reference (the user name is the URL's)."),
    )
    client_cert: Literal["pki:auto"] | None = Field(
        default=None,
        description="pki:auto: a client certificate from Interlock's PKI for mutual TLS.",
    )
    tls: TlsPolicy | None = Field(
        default=None, description="A stricter TLS minimum for this broker than the manifest's."
    )
    description: Text | None = Field(
        default=None, description="Free text for people reading the manifest."
    )

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

    role: Name = Field(
        description=(
            "A role of the manifest: operators holding it may list, show, replay and "
            "purge dead letters."
        )
    )
    retention: Duration = Field(
        default=timedelta(days=7), description="How long dead letters are kept."
    )
    max_length: int = Field(
        default=100_000, ge=1, le=100_000_000, description="Most dead letters kept."
    )


class MessagingSpec(_Model):
    """How a messaging integration's messages travel and are protected."""

    # ``schema`` in YAML (a BaseModel attribute name), ``schema_`` in Python and dumps.
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    broker: Name = Field(
        description="The broker the messages travel through (a name under brokers)."
    )
    destination: Destination = Field(
        description="A RabbitMQ topic exchange, or a NATS subject prefix (and its stream)."
    )
    consumers: tuple[Name, ...] = Field(
        min_length=1,
        max_length=32,
        description=(
            "Clients that consume, each with its own queue and decryption key; the "
            "integration's client is the producer."
        ),
    )
    encrypt: Literal["payload", "fields"] = Field(
        default="payload",
        description=(
            "payload: the signed message is encrypted whole (JWS in JWE); fields: "
            "signed, and only fields of personal-data categories are encrypted, each "
            "a JWE."
        ),
    )
    field_categories: dict[FieldPath, DataCategory] = Field(
        default_factory=dict,
        description=(
            "The data category of each payload field; with encrypt: fields, those "
            "under user.* are encrypted."
        ),
    )
    schema_: dict[str, Any] | None = Field(
        default=None,
        alias="schema",
        description=(
            "The payload's JSON Schema (2020-12), checked by the consumer before delivery."
        ),
        examples=[{"type": "object", "required": ["order_id"]}],
    )
    fields: tuple[FieldPath, ...] | None = Field(
        default=None,
        min_length=1,
        description=(
            "What consumers receive (minimisation): the payload filtered to these fields."
        ),
    )
    key_algorithm: KeyAlgorithm = Field(
        default="ECDH-ES+A256KW",
        description="The JWE key management algorithm of the consumers' keys.",
    )
    signing_algorithm: SigningAlgorithm = Field(
        default="ES256", description="The producer's JWS signing algorithm."
    )
    key_rotation: Duration = Field(
        default=timedelta(days=30),
        description="How often the signing and encryption keys are rotated.",
    )
    ttl: Duration = Field(
        default=timedelta(hours=1),
        description=(
            "A message expires this long after it was sealed, and leaves its queue (1s to 14d)."
        ),
    )
    key_window: Duration | None = Field(
        default=KEY_WINDOW,
        description=(
            "How long one window key serves (1s to 1d): one key agreement per window, "
            "each message's content key wrapped with it; null: a key agreement per "
            "message (a bare JWE, for partners who read nothing else)."
        ),
    )
    max_length: int = Field(
        default=100_000,
        ge=1,
        le=100_000_000,
        description="Most messages waiting in a consumer's queue.",
    )
    max_message: ByteSize = Field(default=256 * 1024, description="The largest message accepted.")
    dead_letter: DeadLetterPolicy = Field(
        description="The dead-letter queue of refused messages: retention, size, who handles it."
    )

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

    @field_validator("key_window")
    @classmethod
    def _window(cls, value: timedelta | None) -> timedelta | None:
        return check_key_window(value)

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
