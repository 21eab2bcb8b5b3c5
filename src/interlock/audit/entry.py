"""What an audit entry says, and its canonical encoding (the Merkle leaf).

Callers build an :class:`AuditEntry` and hand it to an ``AuditSink``. The
sensitive values in it (``subjects``, ``client_ip``) are never written in
clear: :func:`encode_entry` replaces them with keyed pseudonyms
(:mod:`interlock.audit.pseudonyms`) and they are hidden from ``repr``.

Free text (``reason``, ``details``, ``correlation_id``) is masked where it
holds a credential format (an API key, client secret, JWT, PEM key, URL
password: :func:`interlock.logs.redaction.redact_credentials`) before it is
encoded: the log can never be edited, so a secret that reached it would stay.
Callers must not put secrets there; this is the last line of defence.

The encoded entry is canonical JSON (:mod:`interlock.audit.canonical`); its
bytes are the RFC 9162 leaf input, so they are stored exactly as encoded.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from interlock.audit.canonical import MAX_ENTRY_BYTES, scalar, string, utf8
from interlock.audit.pseudonyms import Pseudonymiser
from interlock.logs.redaction import redact_credentials

__all__ = [
    "ENTRY_VERSION",
    "AuditEntry",
    "Outcome",
    "Volume",
    "decode_entry",
    "encode_entry",
    "entry_fields",
    "entry_time",
]

ENTRY_VERSION: Final = 1
_Short = Annotated[str, StringConstraints(min_length=1, max_length=200)]
_Text = Annotated[str, StringConstraints(max_length=2000)]
_DetailValue = (
    Annotated[str, StringConstraints(max_length=500)]
    | Annotated[int, Field(ge=-(2**53) + 1, le=2**53 - 1)]
    | bool
)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


class Volume(_Model):
    """How much data moved: records and bytes."""

    records: int = Field(default=0, ge=0, le=2**53 - 1)
    bytes: int = Field(default=0, ge=0, le=2**53 - 1)


class Outcome(_Model):
    """How it ended: success, partial failure or failure, with a status (HTTP or other)."""

    result: Literal["success", "partial_failure", "failure"]
    status: int | None = Field(default=None, ge=0, le=999_999)


class AuditEntry(_Model):
    """One decision or event worth proving later.

    ``actor`` is who acted (``client:order-sync``, ``admin:alice``), ``action``
    what happened (``gateway.request``, ``token.issue``, ``key.rotate``,
    ``manifest.reload``). ``reason`` says why something was refused.
    ``subjects`` (data-subject identifiers) and ``client_ip`` are sensitive:
    they are stored only as keyed pseudonyms. ``details`` holds a few extra
    non-secret facts (a key id, a scope); never put a secret there.
    """

    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    actor: _Short
    action: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.-]{0,99}$")]
    integration: _Short | None = None
    source: _Short | None = None
    target: _Short | None = None
    data_categories: tuple[_Short, ...] = Field(default=(), max_length=64)
    volume: Volume = Volume()
    outcome: Outcome
    correlation_id: _Short | None = None
    reason: _Text | None = None
    details: dict[
        Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")], _DetailValue
    ] = Field(default_factory=dict, max_length=32)
    subjects: tuple[_Text, ...] = Field(default=(), max_length=256, repr=False)
    client_ip: _Short | None = Field(default=None, repr=False)

    @field_validator("reason", "correlation_id")
    @classmethod
    def _no_credential(cls, value: str | None) -> str | None:
        return None if value is None else redact_credentials(value)

    @field_validator("details")
    @classmethod
    def _no_credential_in_details(
        cls, value: dict[str, str | int | bool]
    ) -> dict[str, str | int | bool]:
        return {k: redact_credentials(v) if isinstance(v, str) else v for k, v in value.items()}

    @field_validator("time")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("the time must carry a time zone")
        return value.astimezone(UTC)


def _timestamp(value: datetime) -> str:
    # The same text as strftime("%Y-%m-%dT%H:%M:%S.%fZ"), at a tenth of the cost.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def encode_entry(
    entry: AuditEntry, pseudonymiser: Pseudonymiser, *, pseudonymise_ip: bool = True
) -> bytes:
    """The canonical bytes of ``entry``, with sensitive values replaced by pseudonyms.

    Byte for byte ``canonical_json`` of :func:`entry_fields`, written directly in
    sorted key order: the generic encoder's sorting and type dispatch cost more
    than the rest of recording a gateway request. The model validated every
    field (types, lengths, 53-bit integers, ASCII detail keys).
    """
    ip = entry.client_ip
    if ip is not None and pseudonymise_ip:
        ip = pseudonymiser.pseudonym("ip", ip)
    details = entry.details
    outcome, volume = entry.outcome, entry.volume
    return utf8(
        "".join(
            (
                '{"action":',
                string(entry.action),
                ',"actor":',
                string(entry.actor),
                ',"client_ip":',
                scalar(ip),
                ',"correlation_id":',
                scalar(entry.correlation_id),
                ',"data_categories":[',
                ",".join(map(string, entry.data_categories)),
                '],"details":{',
                ",".join(f"{string(k)}:{scalar(details[k])}" for k in sorted(details)),
                '},"integration":',
                scalar(entry.integration),
                ',"outcome":{"result":',
                string(outcome.result),
                ',"status":',
                scalar(outcome.status),
                '},"reason":',
                scalar(entry.reason),
                ',"source":',
                scalar(entry.source),
                ',"subjects":[',
                ",".join(string(pseudonymiser.pseudonym("subject", s)) for s in entry.subjects),
                '],"target":',
                scalar(entry.target),
                ',"time":"',
                _timestamp(entry.time),
                f'","v":{ENTRY_VERSION},"volume":{{"bytes":{volume.bytes:d},'
                f'"records":{volume.records:d}}}}}',
            )
        )
    )


def entry_fields(
    entry: AuditEntry, pseudonymiser: Pseudonymiser, *, pseudonymise_ip: bool = True
) -> dict[str, Any]:
    """The JSON object :func:`encode_entry` encodes (the reference form, for tests and tools)."""
    return {
        "v": ENTRY_VERSION,
        "time": _timestamp(entry.time),
        "actor": entry.actor,
        "action": entry.action,
        "integration": entry.integration,
        "source": entry.source,
        "target": entry.target,
        "data_categories": list(entry.data_categories),
        "volume": {"records": entry.volume.records, "bytes": entry.volume.bytes},
        "outcome": {"result": entry.outcome.result, "status": entry.outcome.status},
        "correlation_id": entry.correlation_id,
        "reason": entry.reason,
        "details": dict(entry.details),
        "subjects": [pseudonymiser.pseudonym("subject", s) for s in entry.subjects],
        "client_ip": (
            None
            if entry.client_ip is None
            else pseudonymiser.pseudonym("ip", entry.client_ip)
            if pseudonymise_ip
            else entry.client_ip
        ),
    }


def decode_entry(data: bytes) -> dict[str, Any]:
    """The fields of an encoded entry (as stored: pseudonyms, not values)."""
    if len(data) > MAX_ENTRY_BYTES:
        raise ValueError("the entry is too large")
    decoded = json.loads(data)
    if not isinstance(decoded, dict):
        raise TypeError("an entry is a JSON object")
    return decoded


def entry_time(data: dict[str, Any]) -> datetime:
    """The ``time`` of a decoded entry."""
    return datetime.strptime(data["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
