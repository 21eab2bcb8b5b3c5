"""Request bodies against a route's JSON Schema (2020-12), compiled once at start-up.

jsonschema-rs does the validating. It is built offline — it cannot fetch
anything — and, before that, any ``$ref`` or ``$dynamicRef`` that is not a
local fragment (``#...``) is refused, so a manifest cannot make the gateway
reach out to a URL (SSRF) or depend on a document that changes under it.
Formats are assertions (``date``, ``date-time``, ``email``, ``uuid`` ...),
not annotations: 2020-12 leaves that choice to the validator (§7.2.1 of the
validation vocabulary) and a boundary must not let ``"tomorrow"`` pass as a date.
Formats jsonschema-rs does not know (OpenAPI's ``int64``, ``password``) stay
annotations.

Every violation is reported at once, each located by a JSON pointer to the
offending value and worded from the keyword that failed — never from the
value itself beyond what :func:`~interlock.validation.errors.echo` allows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import jsonschema_rs
from jsonschema_rs import ValidationError, ValidationErrorKind

from interlock.validation.errors import MAX_VIOLATIONS, BodyRefused, Violation, echo, pointer

__all__ = ["RequestSchema", "SchemaError", "compile_schema"]

_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
_REFERENCES: Final = ("$ref", "$dynamicRef")
_MAX_OPTIONS: Final = 10  # enum values named in a detail


class SchemaError(ValueError):
    """A request schema cannot be used; the message is one line saying why."""


class RequestSchema:
    """A compiled request schema. Build with :func:`compile_schema`."""

    __slots__ = ("_validator",)

    def __init__(self, validator: jsonschema_rs.Validator) -> None:
        """Use :func:`compile_schema`."""
        self._validator = validator

    def violations(self, instance: Any) -> tuple[Violation, ...]:
        """Every way ``instance`` fails the schema (the first MAX_VIOLATIONS), in order found."""
        try:
            if self._validator.is_valid(instance):
                return ()
            found: list[Violation] = []
            for error in self._validator.iter_errors(instance):
                found.extend(_describe(error))
                if len(found) >= MAX_VIOLATIONS:
                    break
        except UnicodeEncodeError:
            # A lone surrogate cannot become Rust text; parse_json refuses those first.
            return (Violation("contains text that is not valid Unicode", pointer="#"),)
        return tuple(found[:MAX_VIOLATIONS])

    def check(self, instance: Any) -> None:
        """Raise :class:`BodyRefused` (422 ``schema-violation``) listing every violation."""
        found = self.violations(instance)
        if found:
            count = "1 problem" if len(found) == 1 else f"{len(found)} problems"
            more = " (the first listed)" if len(found) >= MAX_VIOLATIONS else ""
            raise BodyRefused(
                "schema-violation", f"{count}{more} with the request body; see errors.", found
            )


def compile_schema(schema: Mapping[str, Any]) -> RequestSchema:
    """Compile ``schema`` (JSON Schema 2020-12) once; raise :class:`SchemaError` if unusable.

    Refused: another dialect in ``$schema``, a non-local ``$ref``, and
    anything jsonschema-rs rejects (an invalid schema, a bad pattern, a
    dangling local reference).
    """
    dialect = schema.get("$schema")
    if dialect is not None and str(dialect).rstrip("#") != _DIALECT:
        raise SchemaError(f"$schema must be {_DIALECT} (JSON Schema 2020-12)")
    _local_references_only(schema)
    try:
        validator = jsonschema_rs.Draft202012Validator(
            dict(schema), validate_formats=True, offline=True
        )
    except (ValueError, TypeError) as exc:
        reason = (str(exc).strip().splitlines() or ["invalid schema"])[0]
        raise SchemaError(f"invalid request schema: {reason}") from None
    return RequestSchema(validator)


def _local_references_only(schema: Mapping[str, Any]) -> None:
    """Refuse references outside the schema; iterative, so deep schemas cannot recurse."""
    pending: list[Any] = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, Mapping):
            for keyword in _REFERENCES:
                target = node.get(keyword)
                if target is not None and not (isinstance(target, str) and target.startswith("#")):
                    raise SchemaError(
                        f"{keyword} {echo(target)} is not local: only '#...' references are "
                        "allowed (nothing is fetched)"
                    )
            pending.extend(node.values())
        elif isinstance(node, list | tuple):
            pending.extend(node)


def _describe(error: ValidationError) -> list[Violation]:
    """One violation per problem an error reports, worded from its keyword."""
    where = pointer(*error.instance_path)
    kind = error.kind
    match kind:
        case ValidationErrorKind.Required(property=name):
            return [Violation(f"is a required property: {echo(name)}", pointer=where)]
        case (
            ValidationErrorKind.AdditionalProperties(unexpected=names)
            | ValidationErrorKind.UnevaluatedProperties(unexpected=names)
        ):
            return [
                Violation(f"has a property that is not allowed: {echo(name)}", pointer=where)
                for name in names
            ]
    return [Violation(_expectation(kind), pointer=where)]


def _expectation(kind: ValidationErrorKind) -> str:  # noqa: PLR0911, PLR0912  (one case per keyword)
    match kind:
        case ValidationErrorKind.Type(types=types):
            return f"must be of type {' or '.join(types)}"
        case ValidationErrorKind.Minimum(limit=limit):
            return f"must be at least {_show(limit)}"
        case ValidationErrorKind.Maximum(limit=limit):
            return f"must be at most {_show(limit)}"
        case ValidationErrorKind.ExclusiveMinimum(limit=limit):
            return f"must be greater than {_show(limit)}"
        case ValidationErrorKind.ExclusiveMaximum(limit=limit):
            return f"must be less than {_show(limit)}"
        case ValidationErrorKind.MultipleOf(multiple_of=step):
            return f"must be a multiple of {_show(step)}"
        case ValidationErrorKind.MinLength(limit=limit):
            return f"must be at least {limit} characters long"
        case ValidationErrorKind.MaxLength(limit=limit):
            return f"must be at most {limit} characters long"
        case ValidationErrorKind.MinItems(limit=limit):
            return f"must have at least {limit} items"
        case ValidationErrorKind.MaxItems(limit=limit):
            return f"must have at most {limit} items"
        case ValidationErrorKind.MinProperties(limit=limit):
            return f"must have at least {limit} properties"
        case ValidationErrorKind.MaxProperties(limit=limit):
            return f"must have at most {limit} properties"
        case ValidationErrorKind.Enum(options=options):
            shown = ", ".join(_show(option) for option in options[:_MAX_OPTIONS])
            return f"must be one of: {shown}{', ...' if len(options) > _MAX_OPTIONS else ''}"
        case ValidationErrorKind.Constant(expected_value=expected):
            return f"must be {_show(expected)}"
        case ValidationErrorKind.Format(format=name):
            return f"must be a valid {name}"
        case ValidationErrorKind.Pattern(pattern=regex):
            return f"must match the pattern {echo(regex)}"
        case ValidationErrorKind.UniqueItems():
            return "must not contain duplicate items"
        case ValidationErrorKind.Contains():
            return "must contain at least one item matching the 'contains' schema"
        case ValidationErrorKind.AnyOf():
            return "must match at least one of the 'anyOf' schemas"
        case ValidationErrorKind.OneOfNotValid():
            return "must match exactly one of the 'oneOf' schemas (matches none)"
        case ValidationErrorKind.OneOfMultipleValid():
            return "must match exactly one of the 'oneOf' schemas (matches several)"
        case ValidationErrorKind.Not():
            return "must not match the 'not' schema"
        case ValidationErrorKind.FalseSchema():
            return "is not allowed here"
        case ValidationErrorKind.PropertyNames():
            return "has a property name that does not match 'propertyNames'"
        case ValidationErrorKind.UnevaluatedItems() | ValidationErrorKind.AdditionalItems():
            return "has more items than the schema allows"
        case (
            ValidationErrorKind.BacktrackLimitExceeded() | ValidationErrorKind.RegexEngineFailure()
        ):
            return "could not be checked against its pattern (too complex)"
    return f"does not satisfy the '{echo(kind.name)}' keyword"


def _show(value: object) -> str:
    """A schema value as JSON (so ``"EUR"`` and ``100``), shortened like an echo."""
    return echo(json.dumps(value, ensure_ascii=False, default=str))
