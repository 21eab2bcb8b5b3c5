"""The manifest's subject locators compiled: JSON Pointers and JSONPaths, ElementTree paths.

A :class:`~interlock.config.manifest.SubjectLocator` names where an identifier
sits in a body. Its ``json`` is compiled once by python-jsonpath: an RFC 6901
JSON Pointer (``/customer/email``) selects at most one value, an RFC 9535
JSONPath (``$.lines[*].email``, ``$..email``) any number. ``interlock
validate`` and the gateway compile with the same functions, so what validates
is what runs.

python-jsonpath resolves two non-standard pointer tokens (``#name`` and
``~name`` give the *key* when the member is missing); a pointer whose token
starts with ``#`` or ``~`` is refused, so a pointer means exactly what RFC
6901 says.
"""

from __future__ import annotations

import re
from typing import Final
from xml.etree.ElementTree import Element

import jsonpath

__all__ = ["JsonLocator", "check_xml_path", "compile_json"]

_ENV: Final = jsonpath.JSONPathEnvironment(strict=True)  # RFC 9535, no extensions
_BAD_ESCAPE: Final = re.compile(r"~(?![01])")  # RFC 6901 §3: only ~0 and ~1


class JsonLocator:
    """A compiled ``json`` locator: :meth:`find` lists the values it selects."""

    __slots__ = ("_path", "_pointer", "expression")

    def __init__(self, expression: str) -> None:
        """Compile ``expression``; :class:`ValueError` says why it cannot be."""
        self.expression = expression
        self._pointer: jsonpath.JSONPointer | None = None
        self._path: jsonpath.JSONPath | jsonpath.CompoundJSONPath | None = None
        if expression.startswith("/"):
            self._pointer = _pointer(expression)
        elif expression.startswith("$"):
            try:
                self._path = _ENV.compile(expression)
            except jsonpath.JSONPathError as error:
                first = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise ValueError(f"not an RFC 9535 JSONPath: {first}") from None
        else:
            raise ValueError("a JSON Pointer starts with '/', a JSONPath with '$'")

    def find(self, document: object) -> list[object]:
        """The values selected in ``document`` (parsed JSON); none when it has no such place.

        Only objects and arrays are looked into: python-jsonpath would parse a
        ``str`` document as JSON text, and a parsed JSON string is a value, not a document.
        """
        if not isinstance(document, dict | list):
            return []
        if self._pointer is not None:
            try:
                return [self._pointer.resolve(document)]
            except jsonpath.JSONPointerError:
                return []
        if self._path is None:  # pragma: no cover  (one of the two is always set)
            return []
        try:
            return self._path.findall(document)
        except jsonpath.JSONPathError:  # e.g. nesting deeper than the descent limit
            return []


def compile_json(expression: str) -> JsonLocator:
    """``expression`` (a JSON Pointer or a JSONPath) compiled, or :class:`ValueError`."""
    return JsonLocator(expression)


def _pointer(expression: str) -> jsonpath.JSONPointer:
    if _BAD_ESCAPE.search(expression):
        raise ValueError("not an RFC 6901 JSON Pointer: '~' must be followed by 0 or 1")
    try:
        pointer = jsonpath.JSONPointer(expression, unicode_escape=False)
    except jsonpath.JSONPointerError as error:
        raise ValueError(f"not an RFC 6901 JSON Pointer: {error}") from None
    if any(part.startswith(("#", "~")) for part in pointer.parts):
        raise ValueError(
            "a JSON Pointer token starting with '#' or '~' is not supported "
            "(python-jsonpath reads it as a key selector)"
        )
    return pointer


def check_xml_path(path: str) -> None:
    """:class:`ValueError` unless ``path`` is an ElementTree path relative to the root element."""
    if path.startswith("/"):
        raise ValueError(
            "an xml locator is an ElementTree path relative to the root element "
            "('./customer/email' or 'customer/email'), not an absolute one"
        )
    try:
        Element("root").findall(path)
    except (SyntaxError, KeyError, TypeError) as error:
        # KeyError: an undeclared namespace prefix; TypeError: an unclosed predicate ("a[").
        detail = str(error) if isinstance(error, SyntaxError) else "malformed"
        raise ValueError(f"not an ElementTree path: {detail}") from None
