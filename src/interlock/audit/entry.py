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
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from interlock.audit.canonical import MAX_ENTRY_BYTES, scalar, string, utf8
from interlock.audit.pseudonyms import Pseudonymiser
from interlock.logs.redaction import redact_credentials

__all__ = [
    "ENTRY_VERSION",
    "MAX_DETAIL_TEXT",
    "MAX_REASON_TEXT",
    "AuditEntry",
    "Decision",
    "Outcome",
    "Volume",
    "decision_entry",
    "decision_time",
    "decode_entry",
    "encode_decision",
    "encode_entry",
    "entry_fields",
    "entry_time",
]

ENTRY_VERSION: Final = 1
#: The longest text one ``details`` value may hold (callers truncate to it).
MAX_DETAIL_TEXT: Final = 500
#: The longest ``reason`` an entry may hold (callers truncate to it).
MAX_REASON_TEXT: Final = 2000
_Short = Annotated[str, StringConstraints(min_length=1, max_length=200)]
_Text = Annotated[str, StringConstraints(max_length=MAX_REASON_TEXT)]
_DetailValue = (
    Annotated[str, StringConstraints(max_length=MAX_DETAIL_TEXT)]
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
    outcome, volume = entry.outcome, entry.volume
    return _encode(
        _timestamp(entry.time),
        entry.actor,
        entry.action,
        entry.integration,
        entry.source,
        entry.target,
        entry.data_categories,
        volume.records,
        volume.bytes,
        outcome.result,
        outcome.status,
        entry.correlation_id,
        entry.reason,
        entry.details,
        [pseudonymiser.pseudonym("subject", s) for s in entry.subjects],
        ip,
    )


def _encode(  # noqa: PLR0917  (one positional per field, in the order encoded)
    stamp: str,
    actor: str,
    action: str,
    integration: str | None,
    source: str | None,
    target: str | None,
    data_categories: Sequence[str],
    records: int,
    size: int,
    result: str,
    status: int | None,
    correlation_id: str | None,
    reason: str | None,
    details: Mapping[str, str | int | bool],
    subjects: Sequence[str],
    ip: str | None,
) -> bytes:
    return utf8(
        "".join(
            (
                '{"action":',
                string(action),
                ',"actor":',
                string(actor),
                ',"client_ip":',
                scalar(ip),
                ',"correlation_id":',
                scalar(correlation_id),
                ',"data_categories":[',
                ",".join(map(string, data_categories)),
                '],"details":{',
                ",".join(f"{string(k)}:{scalar(details[k])}" for k in sorted(details)),
                '},"integration":',
                scalar(integration),
                ',"outcome":{"result":',
                string(result),
                ',"status":',
                scalar(status),
                '},"reason":',
                scalar(reason),
                ',"source":',
                scalar(source),
                ',"subjects":[',
                ",".join(map(string, subjects)),
                '],"target":',
                scalar(target),
                ',"time":"',
                stamp,
                f'","v":{ENTRY_VERSION},"volume":{{"bytes":{size:d},"records":{records:d}}}}}',
            )
        )
    )


class Decision(NamedTuple):
    """A gateway decision's fields, as :class:`AuditEntry` takes them (no subjects).

    The gateway records most of its decisions through
    :meth:`~interlock.audit.service.DurableSink.record_decision_later`, which
    encodes these fields directly (:func:`encode_decision`) instead of
    validating a model: building an ``AuditEntry`` cost more than the rest of
    recording a decision on the gateway's event loop.
    """

    time_us: int  # µs since the epoch (UTC)
    actor: str
    action: str
    integration: str | None
    source: str | None
    target: str | None
    data_categories: tuple[str, ...]
    records: int
    bytes: int
    result: str
    status: int | None
    correlation_id: str | None
    reason: str | None
    details: dict[str, str | int | bool]
    client_ip: str | None


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ACTION: Final = re.compile(r"[a-z][a-z0-9_.-]{0,99}")
_DETAIL_KEY: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
_RESULTS: Final = frozenset({"success", "partial_failure", "failure"})
_MAX_SAFE: Final = 2**53 - 1


def decision_time(time_us: int) -> datetime:
    """The aware UTC time of ``time_us`` (exact to the microsecond)."""
    return _EPOCH + timedelta(microseconds=time_us)


def decision_entry(decision: Decision) -> AuditEntry:
    """The validating model of ``decision`` (raises pydantic's ``ValidationError`` as it does)."""
    d = decision
    return AuditEntry(
        time=decision_time(d.time_us),
        actor=d.actor,
        action=d.action,
        integration=d.integration,
        source=d.source,
        target=d.target,
        data_categories=d.data_categories,
        volume=Volume(records=d.records, bytes=d.bytes),
        outcome=Outcome(result=d.result, status=d.status),
        correlation_id=d.correlation_id,
        reason=d.reason,
        details=d.details,
        client_ip=d.client_ip,
    )


def _short(value: str | None) -> bool:
    return value is None or (type(value) is str and 0 < len(value) <= 200)


def _count(value: int) -> bool:
    return type(value) is int and 0 <= value <= _MAX_SAFE


def _in_bounds(d: Decision) -> bool:
    """Whether the model would take ``d``'s fields but ``details`` as they are."""
    return (
        type(d.time_us) is int
        and 0 <= d.time_us < 253_402_300_800_000_000  # years 1970-9999: the same text
        and _short(d.actor)
        and d.actor is not None
        and type(d.action) is str
        and _ACTION.fullmatch(d.action) is not None
        and _short(d.integration)
        and _short(d.source)
        and _short(d.target)
        and type(d.data_categories) is tuple
        and len(d.data_categories) <= 64
        and all(type(c) is str and 0 < len(c) <= 200 for c in d.data_categories)
        and _count(d.records)
        and _count(d.bytes)
        and d.result in _RESULTS
        and type(d.result) is str
        and (d.status is None or (type(d.status) is int and 0 <= d.status <= 999_999))
        and _short(d.correlation_id)
        and (d.reason is None or (type(d.reason) is str and len(d.reason) <= 2000))
        and _short(d.client_ip)
    )


#: Detail texts seen to hold no credential (a route label, a method, a key id):
#: they repeat from request to request, so each is scanned once. Only texts the
#: scan left unchanged are kept, never one that held a credential; bounded.
_CLEAN: set[str] = set()
_CLEAN_MAX: Final = 4096
_MAX_DETAILS: Final = 32  # the model's bound on how many details an entry holds


def _masked_details(
    details: dict[str, str | int | bool],
) -> dict[str, str | int | bool] | None:
    """``details`` as the model keeps them (texts masked), or None outside its bounds."""
    if type(details) is not dict or len(details) > _MAX_DETAILS:
        return None
    masked: dict[str, str | int | bool] = {}
    clean = _CLEAN
    for key, value in details.items():
        if type(key) is not str or _DETAIL_KEY.fullmatch(key) is None:
            return None
        kind = type(value)
        if kind is str:
            text: str = value  # type: ignore[assignment]
            if len(text) > MAX_DETAIL_TEXT:
                return None
            if text not in clean:
                redacted = redact_credentials(text)
                if redacted != text:
                    masked[key] = redacted
                    continue
                if len(clean) >= _CLEAN_MAX:
                    clean.clear()
                clean.add(text)
        elif kind is int:
            if not -_MAX_SAFE <= value <= _MAX_SAFE:  # type: ignore[operator]
                return None
        elif kind is not bool:
            return None
        masked[key] = value
    return masked


#: The last second formatted (decisions come many to a second): (seconds, text).
_LAST_SECOND: tuple[int, str] = (-1, "")


def _decision_timestamp(time_us: int) -> str:
    global _LAST_SECOND  # noqa: PLW0603  (a one-entry cache; a tuple is swapped whole)
    seconds, micros = divmod(time_us, 1_000_000)
    cached, text = _LAST_SECOND
    if cached != seconds:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _LAST_SECOND = (seconds, text)
    return f"{text}.{micros:06d}Z"


def _clean_text(text: str) -> str:
    """``redact_credentials(text)``, scanning a text seen clean before (a reason) only once."""
    if text in _CLEAN:
        return text
    redacted = redact_credentials(text)
    if redacted == text:
        if len(_CLEAN) >= _CLEAN_MAX:
            _CLEAN.clear()
        _CLEAN.add(text)
    return redacted


#: The parts of a decision's encoding that repeat from request to request (who,
#: what, which integration and route, the outcome's result, the details), by
#: those fields: (text before the address, the texts between correlation id and
#: status, text between reason and time, the unique detail keys). Only parts
#: whose fields passed every check are kept; bounded, emptied when full.
_TEMPLATES: dict[tuple[object, ...], _Template] = {}
_TEMPLATES_MAX: Final = 4096
#: Detail keys whose values differ for every entry (a token's, a message's or an
#: event's id): their values are left out of the templates (which would otherwise
#: fill with parts used once) and checked, masked and encoded for each entry into
#: the gap the template leaves.
_UNIQUE_DETAILS: Final = frozenset({"jti", "message_id", "event_id"})
_NO_KEYS: Final[frozenset[str]] = frozenset()
#: Where a unique detail's value goes in a template's text while it is built: JSON
#: text never holds a raw NUL (the encoder escapes it as \u0000).
_GAP: Final = "\x00"


class _Template(NamedTuple):
    before_ip: str
    # The text between correlation id and status, cut where each unique detail's value
    # goes (one piece more than ``unique``).
    before_status: tuple[str, ...]
    before_time: str
    unique: tuple[str, ...]  # the unique detail keys, in the order their values go


def _template_key(d: Decision) -> tuple[object, ...] | None:
    details = d.details
    if type(details) is not dict:
        return None
    unique = _NO_KEYS
    if not _UNIQUE_DETAILS.isdisjoint(details):
        unique = _UNIQUE_DETAILS.intersection(details)
        details = {k: v for k, v in details.items() if k not in unique}
    # The value types too: True == 1 and hash alike, but encode differently.
    return (
        d.action,
        d.actor,
        d.integration,
        d.source,
        d.target,
        d.data_categories,
        d.result,
        tuple(details.items()),
        tuple(map(type, details.values())),
        unique,
    )


def _varying_in_bounds(d: Decision) -> bool:
    """The bounds of :func:`_in_bounds` on the fields a template does not hold."""
    return (
        type(d.time_us) is int
        and 0 <= d.time_us < 253_402_300_800_000_000
        and _count(d.records)
        and _count(d.bytes)
        and (d.status is None or (type(d.status) is int and 0 <= d.status <= 999_999))
        and _short(d.correlation_id)
        and (d.reason is None or (type(d.reason) is str and len(d.reason) <= 2000))
        and _short(d.client_ip)
    )


def _template(d: Decision, key: tuple[object, ...]) -> _Template | None:
    """The repeating parts of ``d``'s encoding, checked and remembered; None if out of bounds."""
    found = _TEMPLATES.get(key)
    if found is not None:
        return found
    made = _parts(d, _UNIQUE_DETAILS.intersection(d.details))
    if made is None:
        return None
    if len(_TEMPLATES) >= _TEMPLATES_MAX:
        _TEMPLATES.clear()
    _TEMPLATES[key] = made
    return made


def _parts(d: Decision, unique: frozenset[str] = frozenset()) -> _Template | None:
    """The parts of ``d``'s encoding around its per-request fields; None if out of bounds.

    The values of the ``unique`` detail keys are left out (checked per entry).
    """
    if not _in_bounds(d):
        return None
    details = d.details
    if unique:
        if type(details) is not dict or len(details) > _MAX_DETAILS:
            return None
        details = {k: v for k, v in details.items() if k not in unique}
    masked = _masked_details(details)
    if masked is None or any(_DETAIL_KEY.fullmatch(k) is None for k in unique):
        return None
    items = {**dict.fromkeys(unique, _GAP), **masked}
    before_status = "".join(
        (
            ',"data_categories":[',
            ",".join(map(string, d.data_categories)),
            '],"details":{',
            ",".join(
                f"{string(k)}:{_GAP if k in unique else scalar(items[k])}" for k in sorted(items)
            ),
            '},"integration":',
            scalar(d.integration),
            ',"outcome":{"result":',
            string(d.result),
            ',"status":',
        )
    )
    return _Template(
        "".join(('{"action":', string(d.action), ',"actor":', string(d.actor), ',"client_ip":')),
        tuple(before_status.split(_GAP)),
        "".join(
            (
                ',"source":',
                scalar(d.source),
                ',"subjects":[],"target":',
                scalar(d.target),
                ',"time":"',
            )
        ),
        tuple(sorted(unique)),
    )


def _unique_value(value: object) -> str | None:
    """A unique detail's value as JSON text, masked as the model masks it; None out of bounds."""
    kind = type(value)
    if kind is str:
        text: str = value  # type: ignore[assignment]
        if len(text) > MAX_DETAIL_TEXT:
            return None
        # Not remembered as clean (_CLEAN): a value seen once would only push others out.
        return string(redact_credentials(text))
    if kind is int:
        number: int = value  # type: ignore[assignment]
        return int.__repr__(number) if -_MAX_SAFE <= number <= _MAX_SAFE else None
    if kind is bool:
        return "true" if value else "false"
    return None


def encode_decision(
    decision: Decision, pseudonymiser: Pseudonymiser, pseudonymise_ip: bool = True
) -> bytes | None:
    """``encode_entry(decision_entry(decision))`` without the model; None if it might differ.

    None when a value is outside what the model takes unchanged (a length, a
    pattern, a range, a type) or cannot be encoded (a lone surrogate): the
    caller then builds the model, which refuses or encodes it as it always did.
    Free text is masked where it holds a credential, as the model's validators do.
    The parts that repeat between decisions come from :data:`_TEMPLATES`;
    those of a decision not remembered there are built (and checked) the same way.
    """
    d = decision
    try:
        key = _template_key(d)
    except TypeError:  # an unhashable value: _parts checks (and refuses) it
        key = None
    if key is None:  # details that are no dict: _parts refuses them
        made = _parts(d)
    elif _varying_in_bounds(d):
        made = _template(d, key)
    else:
        return None
    return None if made is None else _encode_templated(d, made, pseudonymiser, pseudonymise_ip)


def _encode_templated(
    d: Decision, made: _Template, pseudonymiser: Pseudonymiser, pseudonymise_ip: bool
) -> bytes | None:
    before_ip, pieces, before_time, unique = made
    before_status = pieces[0]
    if unique:
        details = d.details
        for key, piece in zip(unique, pieces[1:], strict=True):
            text = _unique_value(details[key])
            if text is None:
                return None
            before_status = f"{before_status}{text}{piece}"
    ip = d.client_ip
    try:
        if ip is not None and pseudonymise_ip:
            ip = pseudonymiser.pseudonym("ip", ip)
        correlation_id = None if d.correlation_id is None else redact_credentials(d.correlation_id)
        reason = None if d.reason is None else _clean_text(d.reason)
        return utf8(
            "".join(
                (
                    before_ip,
                    scalar(ip),
                    ',"correlation_id":',
                    scalar(correlation_id),
                    before_status,
                    scalar(d.status),
                    '},"reason":',
                    scalar(reason),
                    before_time,
                    _decision_timestamp(d.time_us),
                    f'","v":{ENTRY_VERSION},"volume":{{"bytes":{d.bytes:d},'
                    f'"records":{d.records:d}}}}}',
                )
            )
        )
    except (ValueError, UnicodeError):  # a lone surrogate: the model refuses it
        return None


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
