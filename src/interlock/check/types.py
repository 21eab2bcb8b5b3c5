"""Integration types and the seed's type-specific mitigations, as extra checklist items.

Each integration declares its ``type:`` in the manifest or Interlock infers
it: ``rest`` when it has routes through the gateway, otherwise unknown. REST
integrations are covered by the 13 items of :mod:`interlock.check.items`.
Every other type adds its own mitigations from the seed's risk table. Messaging
integrations are enforced by :mod:`interlock.messaging`, and their mitigations
get evidence from the manifest (:mod:`interlock.check.config_messaging`); the
types without an Interlock adapter yet get each mitigation as
``needs_evidence`` with the manual steps, never a silent pass. An integration
whose type is unknown gets one ``needs_evidence`` finding asking for it.
Type items have ids ``type.<type>.<mitigation>`` (and ``type.unknown``), so a
waiver can name them like any other item.
"""

from __future__ import annotations

from typing import Final, get_args

from interlock.check.items import Item
from interlock.check.results import Finding, Location
from interlock.config.manifest import Integration, IntegrationType

__all__ = [
    "ADAPTERS",
    "INTEGRATION_TYPES",
    "TYPE_ITEMS",
    "UNKNOWN_TYPE",
    "integration_type",
    "type_findings",
]

INTEGRATION_TYPES: Final[tuple[IntegrationType, ...]] = get_args(IntegrationType)

ADAPTERS: Final[frozenset[IntegrationType]] = frozenset(
    {"rest", "messaging", "event_streaming", "file_transfer", "b2b_edi", "shared_database"}
)
"""Types Interlock can carry itself (the gateway; the messaging, event and file libraries,
whose items :mod:`interlock.check.config_messaging`, :mod:`interlock.check.config_events`
and :mod:`interlock.check.config_files` answer when the integration declares the type's
section; the roles and views of shared databases, :mod:`interlock.check.config_databases`);
the others, and an integration without its section, are checked by hand."""

UNKNOWN_TYPE: Final = Item(
    "type.unknown",
    "Integration type declared",
    "medium",
    "The integration's type is known, so its type-specific risks can be checked.",
)


def _item(kind: str, key: str, title: str, severity: str, steps: str) -> Item:
    return Item(f"type.{kind}.{key}", title, severity, steps)  # type: ignore[arg-type]


# The seed's mitigations per integration type; the description is the manual check.
_MITIGATIONS: Final[dict[str, tuple[Item, ...]]] = {
    "file_transfer": (
        _item(
            "file_transfer",
            "secure_transport",
            "SFTP or AS2, never plain FTP",
            "high",
            "Confirm files move over SFTP (host key pinned) or AS2 (signed, encrypted), "
            "never FTP or unauthenticated shares.",
        ),
        _item(
            "file_transfer",
            "validate_before_processing",
            "Validate before processing",
            "high",
            "Confirm every file is checked (size, type, schema, CSV formula cells) "
            "in a quarantine area before the target processes it.",
        ),
        _item(
            "file_transfer",
            "drop_access",
            "Access control on the drop",
            "medium",
            "Confirm only the integration's account can read and write the drop folder "
            "and files are removed after processing.",
        ),
    ),
    "shared_database": (
        _item(
            "shared_database",
            "least_privilege_views",
            "Least-privilege views",
            "high",
            "Confirm the integration's database account can only SELECT (or write) the "
            "views it needs, not the tables behind them.",
        ),
        _item(
            "shared_database",
            "change_control",
            "Controlled change process",
            "medium",
            "Confirm schema changes to the shared views go through a reviewed migration "
            "agreed by both systems' owners.",
        ),
        _item(
            "shared_database",
            "database_tls",
            "TLS to the database",
            "high",
            "Confirm the database connection requires TLS with certificate verification.",
        ),
    ),
    "messaging": (
        _item(
            "messaging",
            "broker_tls",
            "TLS to the broker",
            "high",
            "Confirm producers and consumers connect to the broker over TLS with "
            "certificate verification and authenticate (mTLS or SASL).",
        ),
        _item(
            "messaging",
            "dlq_access",
            "Dead-letter queue access control",
            "medium",
            "Confirm the dead-letter queue is readable only by the operators who handle "
            "it: it holds the same personal data as the queue.",
        ),
        _item(
            "messaging",
            "message_expiry",
            "Message expiry",
            "low",
            "Confirm messages and dead letters expire (TTL) within the integration's retention.",
        ),
    ),
    "event_streaming": (
        _item(
            "event_streaming",
            "schema_validation",
            "Schema registry validation",
            "high",
            "Confirm producers are forced to register and conform to a schema "
            "(compatibility mode set) before events are accepted.",
        ),
        _item(
            "event_streaming",
            "event_filtering",
            "Event filtering",
            "medium",
            "Confirm consumers receive only the event types and fields their purpose "
            "needs (filtered topics or projections).",
        ),
        _item(
            "event_streaming",
            "topic_acl",
            "Topic access control",
            "high",
            "Confirm topic ACLs allow each client only its own topics and operations, "
            "and topic retention is set within the integration's retention.",
        ),
    ),
    "b2b_edi": (
        _item(
            "b2b_edi",
            "secure_transport",
            "AS2 or SFTP",
            "high",
            "Confirm interchanges move over AS2 (signed and encrypted, signed MDNs) or "
            "SFTP, never unauthenticated transport.",
        ),
        _item(
            "b2b_edi",
            "partner_certificates",
            "Partner certificates validated",
            "high",
            "Confirm partner certificates are verified against the agreed anchors, and "
            "their expiry is tracked.",
        ),
        _item(
            "b2b_edi",
            "partner_agreement",
            "Trading-partner agreement",
            "medium",
            "Confirm a signed partner agreement covers the data exchanged, its purpose, "
            "security duties and (for personal data) the GDPR roles.",
        ),
    ),
}

TYPE_ITEMS: Final[tuple[Item, ...]] = (
    UNKNOWN_TYPE,
    *(entry for items in _MITIGATIONS.values() for entry in items),
)
"""Every type-specific item (ids ``type.*``), for renderers and waivers."""


def integration_type(flow: Integration) -> IntegrationType | None:
    """The declared type, else ``rest`` for an integration with routes, else None (unknown)."""
    if flow.type is not None:
        return flow.type
    return "rest" if flow.routes else None


def _adapted(flow: Integration, kind: IntegrationType) -> bool:
    """Whether Interlock carries this integration: its type's section is declared.

    A ``file_transfer`` integration without ``files:`` moves files some other
    way: its mitigations are the manual steps, never a silent pass.
    """
    sections: dict[str, object] = {
        "rest": flow.routes,
        "messaging": flow.messaging,
        "event_streaming": flow.events,
        "file_transfer": flow.files,
        "b2b_edi": flow.files,
        "shared_database": flow.database,
    }
    return bool(sections.get(kind))


def type_findings(name: str, flow: Integration, location: Location | None) -> list[Finding]:
    """The type-specific findings of integration ``name`` (none for REST)."""
    kind = integration_type(flow)
    if kind is None:
        return [
            Finding(
                UNKNOWN_TYPE.id,
                name,
                "needs_evidence",
                "the integration has no routes and declares no type, so Interlock cannot "
                "tell which risks apply",
                ("type: not declared", "routes: none"),
                location,
                f"declare type: ({', '.join(INTEGRATION_TYPES)}) on the integration",
            )
        ]
    if kind in ADAPTERS and _adapted(flow, kind):
        return []  # the configuration checks answer them from the type's own section
    return [
        Finding(
            entry.id,
            name,
            "needs_evidence",
            f"{kind} integrations have no Interlock adapter yet: {entry.title.lower()} "
            "must be confirmed by hand",
            (f"type: {kind}",),
            location,
            entry.description,
        )
        for entry in _MITIGATIONS[kind]
    ]
