"""Strict JSON parsing of request bodies, safe against hostile input.

The stdlib's C parser does the parsing; what it accepts beyond RFC 8259, or
what lets a small body cost a lot, is refused:

* bytes that are not UTF-8 (RFC 8259 §8.1: JSON exchanged between systems
  MUST be UTF-8), a byte order mark (§8.1: MUST NOT add one) and strings with
  lone surrogate escapes such as ``"\\ud800"``, which no UTF-8 encoder can
  pass on (§8.2);
* duplicate object keys (§4 leaves their meaning open: two parsers reading
  one body differently is how a checked value differs from a forwarded one);
* ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON, §6), number literals
  longer than ``max_number_length`` and numbers that overflow a double
  (``1e999999`` and ``1e400`` would become ``inf``);
* nesting deeper than ``max_depth``, strings longer than
  ``max_string_length``, objects or arrays with more than ``max_members``
  entries (§9: a parser may limit all of these).

A number a double cannot carry exactly (``1000.00000000000000000001``,
``1e-400``) is parsed as :class:`decimal.Decimal`, so the schema's bounds are
checked on the value the target will read (see
:mod:`interlock.validation.exact_numbers`); integers are exact ``int`` at any
size.

Speed matters (this runs on every JSON request), so the common case is one
parse with a single hook (duplicate keys and member counts), the number hooks
only when a C-speed scan of the bytes says a number could break a limit (digits
inside strings, as in UUIDs, do not count), and
one structure check in Rust (see :class:`_Plan`) that is skipped when the
body's length already rules its problems out. Only when something is wrong is
the body parsed a second time, losslessly, and walked iteratively to name the
first problem in document order with its JSON pointer.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

import jsonschema_rs

from interlock.config.manifest import JsonLimits
from interlock.validation.errors import BodyRefused, Violation, echo, pointer
from interlock.validation.exact_numbers import DBL_DIG, number_of

__all__ = ["parse_json"]

_BOM: Final = b"\xef\xbb\xbf"
# A \uXXXX escape in the surrogate range: a pair is fine, a lone one is not.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _table(mapping: dict[bytes, bytes]) -> bytes:
    table = bytearray(b" " * 256)
    for characters, to in mapping.items():
        for character in characters:
            table[character] = to[0]
    return bytes(table)


# bytes.translate() maps a body to this alphabet at C speed, so that substring
# searches find whether a number hook is needed (see _Plan.risky_numbers).
_NUMBERS: Final = _table({b"0123456789-.": b"d", b"eE": b"e", b"+": b"+"})
# An exponent of 100 or more may overflow; "e-dd" (mapped "eddd") may underflow.
_BIG_EXPONENTS: Final = (b"eddd", b"e+ddd")
# A mantissa of more than DBL_DIG digits may not survive a double (mapped: a run of "d").
_MANY_DIGITS: Final = b"d" * (DBL_DIG + 1)
# A mantissa of fewer digits, with an exponent under 100, stays below 1e308.
_OVERFLOW_DIGITS: Final = 200
# What may come right before a number literal outside a string (RFC 8259 §2, §4, §5: a
# value follows "[", ",", ":", whitespace or nothing). A run of number characters
# after anything else (a quote, a letter) is text inside a string: "6513270e-269e" in
# a UUID is not an exponent. Past _CANDIDATES runs per pattern the scan stays cautious.
_BEFORE_NUMBER: Final = frozenset(b"[,: \t\n\r")
_CANDIDATES: Final = 256


class _Suspect(Exception):  # noqa: N818  (internal signal, never leaves this module)
    """The fast path saw something wrong; the locating pass says what and where."""


def parse_json(body: bytes, limits: JsonLimits) -> Any:
    """The JSON value of ``body``, or :class:`BodyRefused` (400) naming the problem.

    Codes: ``invalid-encoding`` (not UTF-8, a BOM, a lone surrogate escape),
    ``malformed-body`` (not JSON, NaN/Infinity), ``duplicate-key`` and
    ``json-limit-exceeded`` (depth, string length, number literal, members).
    Each refusal carries one :class:`Violation` whose pointer locates the
    problem (``#`` for the whole body).
    """
    if body.startswith(_BOM):
        raise _refuse("invalid-encoding", "starts with a byte order mark (RFC 8259 §8.1)")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refuse("invalid-encoding", f"is not valid UTF-8 (at byte {exc.start})") from None
    plan = _plan(limits)
    try:
        decoder = plan.careful if plan.risky_numbers(body) else plan.fast
        value = decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise _malformed(exc) from None
    except RecursionError:
        # Nesting so deep the C parser ran out of stack: far beyond any max_depth.
        raise _too_deep(limits, ()) from None
    except (_Suspect, ValueError):  # ValueError: int() past sys.get_int_max_str_digits()
        raise _locate(text, limits) from None
    if not plan.fine(value, text):
        raise _locate(text, limits)
    return value


class _Plan:
    """The fast path for one set of limits: hooks and checks that detect, not locate.

    What the hooks cannot see (depth, array sizes, string lengths) is checked
    after parsing by a schema that jsonschema-rs compiles from the limits
    (``maxItems``, ``maxLength`` and ``propertyNames`` per level, containers
    forbidden below ``max_depth``): a walk done in Rust, measured about three
    times faster than the same walk in Python on a 200 KiB body. It runs only when the body's length
    does not already rule the problems out: no string is longer than the
    body, an array of N items takes at least 2N - 1 characters, and each level
    of nesting takes a bracket.
    """

    def __init__(self, limits: JsonLimits) -> None:
        self.limits = limits
        self.max_number = limits.max_number_length
        self.max_members = limits.max_members
        long_run = b"d" * max(1, (limits.max_number_length - 1) // 2)
        # Both runs of "d" call for the careful decoder: a run holding the longer one
        # holds the shorter, so one scan, for the shorter, finds either.
        self.digit_run = min(long_run, _MANY_DIGITS, key=len)
        # Decoders built once: json.loads(text, **hooks) would build one per call.
        self.fast = json.JSONDecoder(object_pairs_hook=self.pairs, parse_constant=_suspect)
        self.careful = json.JSONDecoder(
            object_pairs_hook=self.pairs,
            parse_int=self.integer,
            parse_float=self.real,
            parse_constant=_suspect,
        )
        self.structure = _structure_validator(limits, strings=False)
        self.structure_and_strings = _structure_validator(limits, strings=True)

    def risky_numbers(self, body: bytes) -> bool:
        """Whether a number could be too long, overflow or be inexact as a float.

        If so the number hooks must run. A literal is
        ``-?d+(.d+)?([eE][+-]?d+)?``: mapped to the alphabet ``d e +``, one
        longer than max_number_length holds a run of at least
        (max_number_length - 1) // 2 ``d``. Without an exponent of three
        digits, a literal shorter than 200 characters cannot overflow.
        Without a run of 16 ``d`` (more than DBL_DIG digits) and a negative
        exponent of two digits, a float carries it exactly. Digits inside
        strings only make the answer cautious.
        """
        if self.max_number >= _OVERFLOW_DIGITS:
            return True
        mapped = body.translate(_NUMBERS)
        return any(
            _maybe_number(body, mapped, pattern) for pattern in (self.digit_run, *_BIG_EXPONENTS)
        )

    def pairs(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs) or len(pairs) > self.max_members:
            raise _Suspect
        return result

    def integer(self, literal: str) -> int:
        if len(literal) > self.max_number:
            raise _Suspect
        return int(literal)

    def real(self, literal: str) -> float | Decimal:
        if len(literal) > self.max_number:
            raise _Suspect
        number = float(literal)
        if number in (math.inf, -math.inf):
            raise _Suspect
        return number_of(literal, number)

    def fine(self, value: Any, text: str) -> bool:
        """Whether a parsed value keeps the limits the hooks cannot check."""
        limits = self.limits
        if "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None and not _encodable(value):
            return False
        strings = len(text) > limits.max_string_length
        if (
            strings
            or len(text) > 2 * limits.max_members
            or text.count("[") + text.count("{") > limits.max_depth
        ):
            validator = self.structure_and_strings if strings else self.structure
            return validator.is_valid(value)
        return True


@lru_cache(maxsize=256)
def _plan(limits: JsonLimits) -> _Plan:
    return _Plan(limits)


def _maybe_number(body: bytes, mapped: bytes, pattern: bytes) -> bool:
    """Whether ``pattern`` occurs in ``mapped`` where a number literal of ``body`` could be.

    Each run of number characters holding ``pattern`` is looked at once, at C speed
    (``mapped`` has a space for every other character). Cautious: True when there
    are more than :data:`_CANDIDATES` such runs.
    """
    at = mapped.find(pattern)
    for _ in range(_CANDIDATES):
        if at == -1:
            return False
        begin = mapped.rfind(b" ", 0, at) + 1
        if begin == 0 or body[begin - 1] in _BEFORE_NUMBER:
            return True
        end = mapped.find(b" ", at)
        if end == -1:
            return False
        at = mapped.find(pattern, end)
    return at != -1


def _suspect(_literal: str) -> Any:
    raise _Suspect


def _encodable(value: Any) -> bool:
    """Whether every string and key is valid Unicode (no lone surrogate), at C speed."""
    try:
        json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")  # str: a Decimal
    except UnicodeEncodeError:
        return False
    return True


def _structure_validator(limits: JsonLimits, *, strings: bool) -> jsonschema_rs.Validator:
    """A schema for the limits: level k of nesting refers to level k + 1 by ``$ref``."""
    levels: dict[str, dict[str, Any]] = {}
    for level in range(1, limits.max_depth + 1):
        below = {"$ref": f"#/$defs/{level + 1}"}
        levels[str(level)] = {"maxItems": limits.max_members, "items": below}
        levels[str(level)]["additionalProperties"] = below
    levels[str(limits.max_depth + 1)] = {"not": {"type": ["object", "array"]}}
    if strings:
        for schema in levels.values():
            schema["maxLength"] = limits.max_string_length
            schema["propertyNames"] = {"maxLength": limits.max_string_length}
    return jsonschema_rs.Draft202012Validator({"$defs": levels, "$ref": "#/$defs/1"}, offline=True)


# The locating pass: a lossless parse (duplicate keys kept, number literals raw),
# walked in document order to name the first problem and its pointer.


class _Object(list[tuple[str, Any]]):
    """An object's members in order, duplicates kept."""


class _Integer(str):
    """An integer literal, unconverted."""

    __slots__ = ()


class _Real(str):
    """A literal with a fraction or exponent, unconverted."""

    __slots__ = ()


class _Constant(str):
    """NaN, Infinity or -Infinity."""

    __slots__ = ()


def _locate(text: str, limits: JsonLimits) -> BodyRefused:  # noqa: PLR0911  (one per problem)
    try:
        tree = json.loads(
            text,
            object_pairs_hook=_Object,
            parse_int=_Integer,
            parse_float=_Real,
            parse_constant=_Constant,
        )
    except json.JSONDecodeError as exc:  # a hook fired before the syntax error was reached
        return _malformed(exc)
    except RecursionError:
        return _too_deep(limits, ())
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(tree, ())]
    while stack:
        node, path = stack.pop()
        refusal = _check_node(node, path, limits)
        if refusal is not None:
            return refusal
        if isinstance(node, _Object):
            children: list[tuple[Any, tuple[str | int, ...]]] = []
            if len(path) + 1 > limits.max_depth:
                return _too_deep(limits, path)
            seen: set[str] = set()
            for key, item in node:
                if (problem := _string_problem(key, limits)) is not None:
                    return _refuse(problem[0], f"has a key that {problem[1]}", path)
                if key in seen:
                    return _refuse("duplicate-key", "is a duplicate object key", (*path, key))
                seen.add(key)
                children.append((item, (*path, key)))
            stack.extend(reversed(children))
        elif isinstance(node, list):
            if len(path) + 1 > limits.max_depth:
                return _too_deep(limits, path)
            stack.extend((node[i], (*path, i)) for i in range(len(node) - 1, -1, -1))
    # The fast path's only other failure: an int() conversion past the interpreter's digit limit.
    return _refuse("json-limit-exceeded", "has a number too large to convert")


def _check_node(node: Any, path: tuple[str | int, ...], limits: JsonLimits) -> BodyRefused | None:
    """The problem with one value itself (not its members), if any."""
    if isinstance(node, _Object):
        if len(node) > limits.max_members:
            return _refuse(
                "json-limit-exceeded", f"has more than {limits.max_members} members", path
            )
    elif isinstance(node, list):
        if len(node) > limits.max_members:
            return _refuse("json-limit-exceeded", f"has more than {limits.max_members} items", path)
    elif isinstance(node, _Constant):
        return _refuse("malformed-body", f"is {node}, which is not a JSON number", path)
    elif isinstance(node, (_Integer, _Real)):
        return _number_problem(node, path, limits)
    elif isinstance(node, str) and (problem := _string_problem(node, limits)) is not None:
        return _refuse(problem[0], problem[1], path)
    return None


def _number_problem(
    literal: str, path: tuple[str | int, ...], limits: JsonLimits
) -> BodyRefused | None:
    if len(literal) > limits.max_number_length:
        return _refuse(
            "json-limit-exceeded",
            f"is a number written with more than {limits.max_number_length} characters",
            path,
        )
    convert: Callable[[str], float] = int if isinstance(literal, _Integer) else float
    try:
        number = convert(literal)
    except ValueError:
        number = math.inf
    if number in (math.inf, -math.inf):
        return _refuse("json-limit-exceeded", "is a number out of range", path)
    return None


def _string_problem(text: str, limits: JsonLimits) -> tuple[str, str] | None:
    if len(text) > limits.max_string_length:
        return "json-limit-exceeded", f"is longer than {limits.max_string_length} characters"
    if _SURROGATE.search(text) is not None:
        return "invalid-encoding", "contains a lone surrogate escape, which is not valid Unicode"
    return None


def _malformed(exc: json.JSONDecodeError) -> BodyRefused:
    # The decoder's messages are fixed texts ("Expecting value"), never the input.
    where = f"line {exc.lineno} column {exc.colno}"
    return _refuse("malformed-body", f"is not valid JSON: {exc.msg} ({where})")


def _too_deep(limits: JsonLimits, path: tuple[str | int, ...]) -> BodyRefused:
    return _refuse("json-limit-exceeded", f"is nested deeper than {limits.max_depth} levels", path)


def _refuse(code: str, problem: str, path: tuple[str | int, ...] = ()) -> BodyRefused:
    """A 400 refusal; ``problem`` completes "The body ..." or "The value at #/x ..."."""
    where = pointer(*path)
    subject = "The body" if not path else f"The value at {echo(where)}"
    detail = f"{subject} {problem}."
    return BodyRefused(code, detail, (Violation(problem, pointer=where),))
