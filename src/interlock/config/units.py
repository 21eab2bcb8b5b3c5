"""Typed durations (``P90D``, ``90d``) and rates (``1000/min``) for the manifest.

Both are parsed once, at load, into values the rest of Interlock computes with;
nothing downstream re-parses strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Final

from pydantic import PlainSerializer, PlainValidator, TypeAdapter, ValidationError, WithJsonSchema

__all__ = [
    "DURATION_PATTERN",
    "RATE_PATTERN",
    "SIZE_PATTERN",
    "ByteSize",
    "Duration",
    "Rate",
    "RateValue",
    "format_duration",
    "parse_byte_size",
    "parse_duration",
    "parse_rate",
]

_SECOND: Final = timedelta(seconds=1)

# Short forms: a number and one unit letter. "m" is minutes (never months:
# use ISO 8601 "P1M" for a month).
_SHORT_DURATION: Final = re.compile(r"^\s*([0-9]+)\s*([smhdw])\s*$")
_SHORT_UNITS: Final = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_ISO: Final = TypeAdapter(timedelta)


def parse_duration(value: object) -> timedelta:
    """``90d``, ``24h``, ``10m``, ``30s``, ``2w`` or ISO 8601 (``P90D``, ``PT10M``, ``P1Y``).

    In ISO 8601 a year counts 365 days and a month 30 days. Bare numbers are
    refused: ``retention: 90`` would silently mean 90 *seconds*.
    """
    if isinstance(value, timedelta):
        duration = value
    elif not isinstance(value, str):
        # pydantic turns only ValueError into a located validation error
        raise ValueError("a duration is text such as '90d' or 'P90D', not a bare number")  # noqa: TRY004
    elif match := _SHORT_DURATION.match(value):
        duration = _times(int(match.group(1)), _SHORT_UNITS[match.group(2)], "a duration")
    elif value.strip().upper().startswith("P"):
        try:
            duration = _ISO.validate_python(value.strip().upper())
        except ValidationError:
            raise ValueError(f"{value!r} is not an ISO 8601 duration such as 'P90D'") from None
    else:
        raise ValueError(f"{value!r} is not a duration; write e.g. '90d', '24h', 'P90D'")
    if duration <= timedelta(0):
        raise ValueError("a duration must be positive")
    return duration


def format_duration(value: timedelta) -> str:
    """ISO 8601 text for ``value`` (``P90D``, ``PT10M``); :func:`parse_duration` reads it."""
    return str(_ISO.dump_python(value, mode="json"))


#: parse_duration's grammar for the published JSON Schema (editors' hint only:
#: parse_duration decides, e.g. whether an ISO 8601 text is one).
DURATION_PATTERN: Final = r"^\s*([0-9]+\s*[smhdw]|[Pp][0-9A-Za-z.,]+)\s*$"

Duration = Annotated[
    timedelta,
    PlainValidator(parse_duration),
    # Explicit, because pydantic's own timedelta serializer warns behind a PlainValidator.
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A positive duration: 90d, 24h, 10m, 30s, 2w, or ISO 8601 (P90D).",
            "examples": ["90d", "P90D"],
        }
    ),
]
"""A positive :class:`~datetime.timedelta` written as ``90d`` or ``P90D`` in YAML."""


_RATE: Final = re.compile(r"^\s*([0-9]+)\s*/\s*([0-9]*)\s*([a-z]+)\s*$")
_RATE_UNITS: Final = {
    **dict.fromkeys(("s", "sec", "second", "seconds"), timedelta(seconds=1)),
    **dict.fromkeys(("m", "min", "minute", "minutes"), timedelta(minutes=1)),
    **dict.fromkeys(("h", "hr", "hour", "hours"), timedelta(hours=1)),
    **dict.fromkeys(("d", "day", "days"), timedelta(days=1)),
}
_CANONICAL: Final = (
    (timedelta(days=1), "day"),
    (timedelta(hours=1), "hour"),
    (timedelta(minutes=1), "min"),
    (timedelta(seconds=1), "s"),
)


@dataclass(frozen=True, order=True)
class Rate:
    """At most ``limit`` events per ``period``."""

    limit: int
    period: timedelta

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("a rate limit must allow at least 1 request")
        if self.period < _SECOND or self.period % _SECOND:
            raise ValueError("a rate period is a whole number of seconds, at least one")

    @property
    def per_second(self) -> float:
        """The sustained rate in events per second."""
        return self.limit / self.period.total_seconds()

    def __str__(self) -> str:
        for unit, name in _CANONICAL:
            if self.period % unit == timedelta(0):
                count = self.period // unit
                return f"{self.limit}/{name}" if count == 1 else f"{self.limit}/{count}{name}"
        return f"{self.limit}/{int(self.period.total_seconds())}s"  # pragma: no cover


def _any_case(word: str) -> str:
    return "".join(f"[{c}{c.upper()}]" for c in word)


#: parse_rate's grammar (units in any case) as an ECMA-262 pattern, for editors.
RATE_PATTERN: Final = (
    r"^\s*[0-9]+\s*/\s*[0-9]*\s*("
    + "|".join(_any_case(u) for u in sorted(_RATE_UNITS, key=len, reverse=True))
    + r")\s*$"
)


def parse_rate(value: object) -> Rate:
    """``1000/min``, ``5/s``, ``100/hour``, ``50000/day`` or ``10/5min`` into a :class:`Rate`."""
    if isinstance(value, Rate):
        return value
    if not isinstance(value, str):
        raise ValueError("a rate is text such as '1000/min'")  # noqa: TRY004
    match = _RATE.match(value.lower())
    if match is None or match.group(3) not in _RATE_UNITS:
        raise ValueError(f"{value!r} is not a rate; write e.g. '1000/min', '5/s', '100/hour'")
    count = int(match.group(2) or "1")
    if count < 1:
        raise ValueError("a rate period must be at least one unit")
    return Rate(int(match.group(1)), _times(count, _RATE_UNITS[match.group(3)], "a rate period"))


def _times(count: int, unit: timedelta, what: str) -> timedelta:
    """``count * unit``, with timedelta's overflow turned into a readable ValueError."""
    try:
        return count * unit
    except OverflowError:
        raise ValueError(f"{what} of {count} units is too long") from None


RateValue = Annotated[
    Rate,
    PlainValidator(parse_rate),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": RATE_PATTERN,
            "description": "At most N requests per period: 1000/min, 5/s, 100/hour, 10/5min.",
            "examples": ["1000/min", "5/s"],
        }
    ),
]
"""A :class:`Rate` written as ``1000/min`` in YAML."""


_SIZE: Final = re.compile(r"^\s*([0-9]+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*$")
_SIZE_UNITS: Final = {
    "B": 1,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
}
#: parse_byte_size's text form, for the published JSON Schema.
SIZE_PATTERN: Final = r"^\s*[0-9]+\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*$"
MAX_BYTE_SIZE: Final = 1024**3  # 1 GiB: anything larger is not a request body a gateway buffers


def parse_byte_size(value: object) -> int:
    """``1MiB``, ``512KiB``, ``10MB`` or a plain number of bytes into an int (1 B to 1 GiB)."""
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or text such as '1MiB'")  # noqa: TRY004
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        size = int(match.group(1)) * _SIZE_UNITS[match.group(2) or "B"]
    else:
        raise ValueError(f"{value!r} is not a size; write e.g. '1MiB', '512KiB' or '10MB'")
    if not 1 <= size <= MAX_BYTE_SIZE:
        raise ValueError("a size is between 1 byte and 1GiB")
    return size


ByteSize = Annotated[
    int,
    PlainValidator(parse_byte_size),
    PlainSerializer(int, return_type=int),
    WithJsonSchema(
        {
            "type": ["integer", "string"],
            "pattern": SIZE_PATTERN,
            "minimum": 1,
            "maximum": MAX_BYTE_SIZE,
            "description": "A size in bytes (1 B to 1 GiB): 1MiB, 512KiB, 10MB or a number.",
            "examples": ["1MiB", "512KiB"],
        }
    ),
]
"""A size in bytes written as ``1MiB``, ``512KiB``, ``10MB`` or a number in YAML."""
