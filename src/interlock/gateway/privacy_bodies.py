"""The JSON bodies of the data-subject request API, and their problems (RFC 9457).

Pydantic v2 models, strict and closed (``extra="forbid"``), read straight from
the bytes (:meth:`~pydantic.BaseModel.model_validate_json`) after the body's
size was capped, once the gateway's strict JSON parser
(:func:`~interlock.validation.json_body.parse_json`) has found it to be RFC
8259 JSON with no key named twice: pydantic's parser takes the last of two
``kind`` members, where a ticketing system, a proxy or a person reading the
first sees another request. A refused body is answered with the fields that
were wrong and why, never with what was sent: a subject's identifier must not
come back in an error body, a log line or the audit trail (issue 20, "nothing
in clear").
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from interlock.config.manifest import (
    COUNTRY_PATTERN,
    NAME_PATTERN,
    SUBJECT_KIND_PATTERN,
    JsonLimits,
)
from interlock.errors import Refusal
from interlock.validation.errors import BodyRefused
from interlock.validation.json_body import parse_json

__all__ = [
    "MAX_BODY",
    "Confirmation",
    "Extension",
    "NewRequest",
    "Subject",
    "TraceQuery",
    "parse",
]

#: The largest body any of these endpoints reads (a rectification with its corrections).
MAX_BODY: Final = 32 * 1024
_MAX_ERRORS: Final = 10
# The deepest body is two levels (subject.value, corrections.*, systems[i]); a list of
# systems holds at most 200 names.
_LIMITS: Final = JsonLimits(max_depth=4, max_string_length=MAX_BODY, max_members=256)
# What the strict parser's refusals say here: its own details name a JSON pointer, whose
# keys are the client's text (a correction's field, or an identifier sent as a key).
_STRICT: Final = {
    "duplicate-key": "the body names a member twice",
    "invalid-encoding": "the body is not UTF-8 JSON (no byte order mark, no lone surrogates)",
    "json-limit-exceeded": "the body is nested too deeply or has too many members",
}
# A corrected field, as the service takes it: a letter or '_', then letters, digits, '_'.
_FIELD_NAME: Final = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"

RequestKind = Literal["access", "export", "erase", "rectify"]
_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
# An email address is at most 254 characters (RFC 5321 §4.5.3.1.3); other identifiers 256.
_Identifier = Annotated[str, StringConstraints(min_length=1, max_length=320)]
_Correction = Annotated[str, StringConstraints(max_length=1000)]


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Subject(_Body):
    """Whom a request or a trace is about: an identifier of a kind (``email``, ``phone``, ...)."""

    kind: Annotated[str, StringConstraints(pattern=SUBJECT_KIND_PATTERN)]
    value: _Identifier
    # The country a national phone number is read in (E.164 needs it), ISO 3166-1 alpha-2.
    region: Annotated[str, StringConstraints(pattern=COUNTRY_PATTERN)] | None = None


class NewRequest(_Body):
    """``POST /v1/privacy/requests``."""

    kind: RequestKind
    subject: Subject
    corrections: (
        Annotated[
            dict[Annotated[str, StringConstraints(pattern=_FIELD_NAME)], _Correction],
            Field(min_length=1, max_length=32),
        ]
        | None
    ) = None
    systems: (
        Annotated[
            list[Annotated[str, StringConstraints(pattern=NAME_PATTERN)]],
            Field(min_length=1, max_length=200),
        ]
        | None
    ) = None

    def checked(self) -> NewRequest:
        """This request, refused unless ``corrections`` go with ``rectify`` and only with it."""
        if (self.kind == "rectify") != (self.corrections is not None):
            raise _refused(
                [
                    (
                        "corrections",
                        "required for rectify, and only for rectify: the fields to correct",
                    )
                ]
            )
        return self


class Extension(_Body):
    """``POST /v1/privacy/requests/{id}/extension``: Art. 12(3), by at most two further months."""

    months: Annotated[int, Field(ge=1, le=2)]
    reason: _Text


class Confirmation(_Body):
    """``POST /v1/privacy/requests/{id}/confirmations``: the operator acted on a manual system."""

    system: Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
    status: Literal["done", "not_found"]
    note: _Text


class TraceQuery(_Body):
    """``POST /v1/privacy/trace``: the identifier travels in the body, never in the URL."""

    subject: Subject


_M = TypeVar("_M", bound=_Body)


def parse(model: type[_M], raw: bytes) -> _M:
    """``raw`` as ``model``, or a problem naming each wrong field (never its value)."""
    try:
        parse_json(raw, _LIMITS)
    except BodyRefused as exc:
        raise Refusal(
            exc.code,
            _STRICT.get(exc.code, "the body is not valid JSON"),
            log_reason=f"privacy api: body refused ({exc.code})",
        ) from None
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        if any(error["type"] == "json_invalid" for error in errors):
            raise Refusal(
                "malformed-body",
                "the body is not valid JSON",
                log_reason="privacy api: body is not JSON",
            ) from None
        raise _refused([_described(error) for error in errors[:_MAX_ERRORS]]) from None


def _described(error: Any) -> tuple[str, str]:
    """(where, what) of one validation error; a member the client named is never repeated."""
    parts = [str(part) for part in error["loc"]]
    if error["type"] == "extra_forbidden":
        # The unknown member's name is the client's text (it could be anything): not echoed.
        return ".".join(parts[:-1]) or "body", "has a member this endpoint does not take"
    if "corrections" in parts[:1] and len(parts) > 1:
        # A key of corrections is the client's text too: "corrections.*".
        parts = ["corrections", "*"]
    return ".".join(parts) or "body", str(error["msg"])


def _refused(problems: list[tuple[str, str]]) -> Refusal:
    first = problems[0]
    return Refusal(
        "schema-violation",
        f"{first[0]}: {first[1]}",
        extra={"errors": [{"field": where, "message": what} for where, what in problems]},
        log_reason="privacy api: body refused ("
        + ", ".join(sorted({where for where, _ in problems}))
        + ")",
    )
