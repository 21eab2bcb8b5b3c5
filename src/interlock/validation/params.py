"""Path and query parameters, typed and pattern-checked from the route before anything else.

A value is checked as text against an allow-list — its type's syntax, the
spec's format, pattern, enum, bounds and length — so that injection strings
(``1 OR 1=1``, ``$(reboot)``, ``../../etc/passwd``, ``${jndi:...}``) never
reach an upstream's query builder, shell or file system. Control characters
are refused in every value, whatever its spec (header, log and CRLF
injection).

Path parameters arrive as :attr:`interlock.gateway.routing.RouteMatch.values`
gives them: one percent-decoded UTF-8 path segment each, already free of
``/``, NUL and control characters (:func:`interlock.gateway.paths.split_target`).
A path parameter without a spec must match :data:`DEFAULT_PARAM`.

The query arrives raw (still percent-encoded) and is parsed strictly here:
``name=value`` fields joined by ``&`` (``;`` is not a separator), valid
percent-escapes and UTF-8, at most :data:`MAX_QUERY_FIELDS` fields. Names
the route does not list are refused, and so is a name given twice: two
readers of ``?id=1&id=2`` (us, the upstream's framework) may take different
values — HTTP parameter pollution.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Final
from urllib.parse import parse_qsl

from interlock.config.manifest import DEFAULT_PARAM, ParamSpec, Route
from interlock.validation.errors import BodyRefused, Violation, echo

__all__ = ["MAX_QUERY_FIELDS", "ParamCheck"]

MAX_QUERY_FIELDS: Final = 100

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_BAD_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
_DEFAULT: Final = re.compile(DEFAULT_PARAM)
# Syntax of each type, ASCII digits only (\d would take Arabic-Indic digits too).
_INTEGER: Final = re.compile(r"[-+]?[0-9]{1,18}")
_NUMBER: Final = re.compile(r"[-+]?[0-9]{1,30}(?:\.[0-9]{1,30})?")
_BOOLEAN: Final = {"true": True, "false": False}
_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_FORMATS: Final[dict[str, re.Pattern[str]]] = {
    "uuid": re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"),
    "date": re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}"),
    # RFC 3339 §5.6 date-time, with the offset required.
    "date-time": re.compile(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
        r"(?:[Zz]|[-+][0-9]{2}:[0-9]{2})"
    ),
    # The common address form: no quoted local parts, comments or IP literals,
    # and none of RFC 5322's rarer local-part characters ($ ` | ' { } ...).
    "email": re.compile(rf"[A-Za-z0-9._%+-]{{1,64}}@{_LABEL}(?:\.{_LABEL})+"),
}
_MAX_ENUM_SHOWN: Final = 10

Value = str | int | float | Decimal | bool


class _Param:
    """One parameter's checks, prepared once from its spec."""

    def __init__(self, spec: ParamSpec) -> None:
        self.spec = spec
        self.pattern = re.compile(spec.pattern) if spec.pattern is not None else None
        self.convert: Callable[[str], Value | None] = _CONVERTERS[spec.type]
        self.allowed = _allowed(spec) if spec.enum is not None else None
        # Bounds as the exact decimals the manifest wrote (0.1, not the double near it),
        # compared with the exact value of the text that is forwarded.
        self.minimum = _exact(spec.minimum) if spec.minimum is not None else None
        self.maximum = _exact(spec.maximum) if spec.maximum is not None else None

    def problem(self, value: str) -> str | None:  # noqa: PLR0911  (one return per rule)
        """Why ``value`` is refused, or None."""
        spec = self.spec
        if _CONTROL.search(value):
            return "must not contain control characters"
        if len(value) > spec.max_length:
            return f"must be at most {spec.max_length} characters long"
        if spec.min_length is not None and len(value) < spec.min_length:
            return f"must be at least {spec.min_length} characters long"
        typed = self.convert(value)
        if typed is None:
            return _TYPE_PROBLEM[spec.type]
        if spec.format is not None and not _valid_format(spec.format, value):
            return f"must be a valid {spec.format}"
        if self.pattern is not None and self.pattern.fullmatch(value) is None:
            return f"must match the pattern {echo(spec.pattern)}"
        if self.allowed is not None and typed not in self.allowed:
            return "must be one of: " + _show_enum(spec.enum or ())
        if isinstance(typed, (bool, str)):
            return None
        if self.minimum is not None and typed < self.minimum:
            return f"must be at least {_number(self.minimum)}"
        if self.maximum is not None and typed > self.maximum:
            return f"must be at most {_number(self.maximum)}"
        return None


class ParamCheck:
    """The path and query parameter checks of one route, built once."""

    def __init__(self, route: Route) -> None:
        """Prepare the checks of ``route``'s ``params`` and ``query`` specs."""
        self._path = {name: _Param(spec) for name, spec in route.params.items()}
        self._query = {name: _Param(spec) for name, spec in route.query.items()}
        self._required = tuple(name for name, spec in route.query.items() if spec.required)

    def check(self, path_params: Mapping[str, str], raw_query: str) -> None:
        """Raise :class:`BodyRefused` (400 ``invalid-parameter``) listing every bad parameter.

        ``path_params``: the route's parameters, each one percent-decoded path
        segment. ``raw_query``: the query string as received, without ``?``.
        """
        found = [
            Violation(problem, parameter=name)
            for name, value in path_params.items()
            if (problem := self._path_problem(name, value)) is not None
        ]
        found.extend(self._query_violations(raw_query))
        if found:
            names = ", ".join(v.parameter for v in found if v.parameter is not None)
            count = "1 parameter is" if len(found) == 1 else f"{len(found)} parameters are"
            raise BodyRefused(
                "invalid-parameter",
                f"{count} invalid{': ' + names if names else ''}; see errors.",
                tuple(found),
            )

    def _path_problem(self, name: str, value: str) -> str | None:
        param = self._path.get(name)
        if param is not None:
            return param.problem(value)
        if _DEFAULT.fullmatch(value) is None:
            return "must be 1-128 letters, digits, '.', '_', '~' or '-'"
        return None

    def _query_violations(self, raw_query: str) -> list[Violation]:
        if not raw_query:
            return [Violation("is required", parameter=name) for name in self._required]
        if _BAD_ESCAPE.search(raw_query):
            return [Violation("the query string has a malformed percent-escape")]
        try:
            fields = parse_qsl(
                raw_query,
                keep_blank_values=True,
                strict_parsing=True,
                max_num_fields=MAX_QUERY_FIELDS,
                encoding="utf-8",
                errors="strict",
            )
        except UnicodeDecodeError:
            return [Violation("the query string is not valid UTF-8 after percent-decoding")]
        except ValueError:
            return [
                Violation(
                    f"the query string must be at most {MAX_QUERY_FIELDS} name=value fields "
                    "joined by '&'"
                )
            ]
        found: list[Violation] = []
        seen: set[str] = set()
        for name, value in fields:
            param = self._query.get(name)
            if param is None:
                found.append(Violation("is not an accepted query parameter", parameter=echo(name)))
            elif name in seen:
                found.append(Violation("must not be given more than once", parameter=name))
            elif (problem := param.problem(value)) is not None:
                found.append(Violation(problem, parameter=name))
            seen.add(name)
        found.extend(
            Violation("is required", parameter=name) for name in self._required if name not in seen
        )
        return found


def _integer(value: str) -> int | None:
    return int(value) if _INTEGER.fullmatch(value) else None


def _decimal(value: str) -> Decimal | None:
    # Exact: as a float, "100.00000000000000000001" would pass "maximum: 100".
    return Decimal(value) if _NUMBER.fullmatch(value) else None


def _exact(number: float) -> Decimal:
    """The decimal a manifest number was written as (its shortest repr)."""
    return Decimal(repr(number)) if isinstance(number, float) else Decimal(number)


_CONVERTERS: Final[dict[str, Callable[[str], Value | None]]] = {
    "string": lambda value: value,
    "integer": _integer,
    "number": _decimal,
    "boolean": _BOOLEAN.get,
}
_TYPE_PROBLEM: Final = {
    "integer": "must be an integer (an optional sign and up to 18 digits)",
    "number": "must be a decimal number (digits, optionally a sign and a '.')",
    "boolean": "must be true or false",
}


def _allowed(spec: ParamSpec) -> frozenset[Value]:
    """The enum as values of the parameter's type (an integer 2 allows "2.0" for a number)."""
    values: set[Value] = set()
    for option in spec.enum or ():
        if spec.type == "string":
            values.add(option if isinstance(option, str) else _text(option))
        elif spec.type == "boolean":
            if isinstance(option, bool):
                values.add(option)
        elif not isinstance(option, (bool, str)):
            values.add(_exact(option) if spec.type == "number" else option)
    return frozenset(values)


def _valid_format(name: str, value: str) -> bool:
    if _FORMATS[name].fullmatch(value) is None:
        return False
    try:
        if name == "date":
            date.fromisoformat(value)
        elif name == "date-time":
            datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _text(option: Value) -> str:
    if isinstance(option, bool):
        return "true" if option else "false"
    return _number(option) if isinstance(option, float) else str(option)


def _number(value: float | Decimal) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _show_enum(options: tuple[Value, ...]) -> str:
    shown = ", ".join(echo(_text(option)) for option in options[:_MAX_ENUM_SHOWN])
    return shown + (", ..." if len(options) > _MAX_ENUM_SHOWN else "")
