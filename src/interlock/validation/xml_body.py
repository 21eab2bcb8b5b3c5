"""XML request bodies: defused parsing, a depth cap and optional XSD validation.

Parsing goes through ``defusedxml`` with every protection on, so a DOCTYPE of
any kind — and with it XXE (OWASP XXE Prevention Cheat Sheet), billion laughs,
parameter entities and external DTDs — is refused when expat reports the
DOCTYPE, before anything is declared, expanded or fetched. The two external
references a document can make without a DTD are refused as the parser meets
them: XInclude elements (an XInclude processor upstream would fetch ``href``,
``file:///etc/passwd`` included) and processing instructions — ``<?xml-stylesheet
href=...?>`` makes an XSLT-aware upstream fetch and run a stylesheet, and no
other PI has a use in a request body (the XML declaration is not one).

Refusals (:class:`~interlock.validation.errors.BodyRefused`):

* 400 ``malformed-body`` — not UTF-8, an XML declaration naming another
  encoding, or not well-formed XML;
* 400 ``xml-refused`` — a DTD, an entity declaration, an XInclude element or
  a processing instruction;
* 400 ``too-deep`` — elements nested deeper than ``XmlPolicy.max_depth``;
* 422 ``schema-violation`` — the document breaks the route's XSD. Each
  violation's ``pointer`` is the element's XPath location as xmlschema reports
  it — a 1-based position only where siblings share the name, namespaces in
  Clark notation — with ``/@name`` for an attribute: ``/order/line[2]/qty``,
  ``/order/line/@id`` (XML has no JSON pointer; RFC 9457 leaves the member to
  us). Details name the constraint; names and values from the document appear
  only as :func:`~interlock.validation.errors.echo` shows them.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.error import URLError
from urllib.request import FileHandler, OpenerDirector, Request, UnknownHandler, url2pathname
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

import xmlschema
from defusedxml import DefusedXmlException, DTDForbidden  # type: ignore[import-untyped]
from defusedxml.ElementTree import DefusedXMLParser  # type: ignore[import-untyped]
from xmlschema import XMLResource, XMLSchemaBase
from xmlschema.exceptions import XMLSchemaWarning
from xmlschema.utils.decoding import raw_encode_value
from xmlschema.validators import XMLSchemaChildrenValidationError, XMLSchemaDecodeError

from interlock.config.manifest import XmlPolicy
from interlock.validation.errors import MAX_ECHO, MAX_VIOLATIONS, BodyRefused, Violation, echo

__all__ = ["XsdSchema", "load_xsd", "parse_xml"]

XsdSchema = XMLSchemaBase
"""A compiled XSD, from :func:`load_xsd`."""

_MAX_DETAIL: Final = 200
# xmlschema prefixes an attribute's error reason with "attribute NAME=VALUE: ".
_ATTRIBUTE_REASON: Final = re.compile(r"attribute ([^\s=]+)=")
_QUOTED: Final = re.compile(rf"'([^']{{{MAX_ECHO + 1},}})'")
# XInclude 1.0 and the 2003 draft namespace that libxml2 still processes.
_XINCLUDE: Final = ("{http://www.w3.org/2001/XInclude}", "{http://www.w3.org/2003/XInclude}")


def parse_xml(body: bytes, policy: XmlPolicy, schema: XsdSchema | None = None) -> Element:
    """The root element of ``body``, or :class:`BodyRefused` (see the module docstring).

    ``body`` must be UTF-8; a leading byte order mark is tolerated. When
    ``schema`` is given the document is validated against it and every
    violation (up to :data:`MAX_VIOLATIONS`, the rest counted) is reported.
    """
    text = _utf8(body)
    parser = DefusedXMLParser(
        target=_DepthLimitedBuilder(policy.max_depth),
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )
    # The text is handed to expat as str, which makes expat read it as UTF-8
    # whatever the declaration says; a declaration naming another encoding would
    # make us and the target read different characters, so it is refused.
    parser.parser.XmlDeclHandler = _require_utf8_declaration
    try:
        parser.feed(text)
        root: Element = parser.close()
    except DTDForbidden:
        raise _refused("xml-refused", "DTDs are not accepted (no DOCTYPE)") from None
    except DefusedXmlException:  # unreachable while DTDs are refused; kept as a second lock
        raise _refused("xml-refused", "entities and external references are not accepted") from None
    except ParseError as error:
        line, column = error.position
        raise _refused("malformed-body", f"not well-formed XML at {line}:{column}") from None
    if schema is not None:
        _validate(root, schema)
    return root


def load_xsd(path: Path) -> XsdSchema:
    """The XSD at ``path``, compiled once; a one-line :class:`ValueError` naming it if bad.

    The schema may include or import only files inside its own directory
    (symlinks resolved): xmlschema's ``allow="sandbox"`` plus an opener that
    can open nothing but those files, so no schema can reach the network or
    read ``/etc/passwd``. Every XSD file is defused (``defuse="always"``); a
    failed import or include, which xmlschema only warns about, is an error.
    """
    resolved = path.resolve()
    opener = OpenerDirector()
    opener.add_handler(_SandboxFileHandler(resolved.parent))
    opener.add_handler(UnknownHandler())  # no http, ftp or data handlers at all
    try:
        with warnings.catch_warnings():  # process-wide: load schemas at start-up only
            warnings.simplefilter("error", XMLSchemaWarning)
            schema = xmlschema.XMLSchema(
                str(resolved),
                base_url=str(resolved.parent),
                allow="sandbox",
                defuse="always",
                opener=opener,
                use_location_hints=False,
            )
    except (xmlschema.XMLSchemaException, XMLSchemaWarning, OSError) as error:
        reason = " ".join(str(error).split())[:_MAX_DETAIL]
        raise ValueError(f"XSD {path}: {reason}") from None
    return schema


class _DepthLimitedBuilder(TreeBuilder):
    """A tree builder that refuses nesting deeper than ``max_depth`` as it goes."""

    def __init__(self, max_depth: int) -> None:
        super().__init__()
        self._max_depth = max_depth
        self._depth = 0

    def start(self, tag: str, attrs: dict[str, str], /) -> Element:
        self._depth += 1
        if self._depth > self._max_depth:
            detail = f"elements nested deeper than {self._max_depth}"
            raise BodyRefused("too-deep", detail)
        if tag.startswith(_XINCLUDE):
            raise _refused("xml-refused", "XInclude elements are not accepted")
        return super().start(tag, attrs)

    def pi(self, target: str, text: str | None = None, /) -> Element:
        # Called by the parser for every processing instruction, kept or not.
        raise _refused("xml-refused", "processing instructions are not accepted")

    def end(self, tag: str, /) -> Element:
        self._depth -= 1
        return super().end(tag)


class _SandboxFileHandler(FileHandler):
    """Opens ``file:`` URLs inside one directory only, after resolving symlinks."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self._directory = directory

    def file_open(self, req: Request) -> Any:
        target = Path(url2pathname(req.selector)).resolve()
        if req.host or not target.is_relative_to(self._directory):
            raise URLError("outside the schema's directory")
        return super().file_open(req)


def _utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise _refused("malformed-body", f"not UTF-8 at byte {error.start}") from None


def _require_utf8_declaration(version: str, encoding: str | None, standalone: int) -> None:
    if encoding is not None and encoding.lower() != "utf-8":
        detail = f"declared encoding {echo(encoding)!r} is not accepted; send UTF-8"
        raise _refused("malformed-body", detail)


def _refused(code: str, detail: str) -> BodyRefused:
    return BodyRefused(code, detail)


def _validate(root: Element, schema: XsdSchema) -> None:
    # allow="none": the document cannot make the validator load anything, and
    # xsi:schemaLocation hints were switched off when the schema was built.
    resource = XMLResource(root, allow="none")
    violations: list[Violation] = []
    count = 0
    for error in schema.iter_errors(resource):
        count += 1
        if len(violations) < MAX_VIOLATIONS:
            violations.append(_violation(error))
    if count:
        noun = "violation" if count == 1 else "violations"
        detail = f"{count} {noun} of the XML schema"
        if count > len(violations):
            detail += f" (the first {len(violations)} listed)"
        raise BodyRefused("schema-violation", detail, tuple(violations))


def _violation(error: xmlschema.XMLSchemaValidationError) -> Violation:
    """A violation naming the constraint; input shows up only through :func:`echo`."""
    location = error.path or "/"
    if isinstance(error, XMLSchemaChildrenValidationError):
        return Violation(_children_detail(error), pointer=_cap(location))
    reason = error.reason or "not valid"
    attribute = _ATTRIBUTE_REASON.match(reason)
    prefix = f"{attribute[0]}{raw_encode_value(error.obj)!r}: " if attribute else ""
    if attribute is not None and reason.startswith(prefix):
        location += f"/@{attribute[1]}"
        reason = reason.removeprefix(prefix)
    if isinstance(error, XMLSchemaDecodeError):
        # The reason is Python's conversion error, which quotes the whole value.
        type_name = getattr(error.validator, "prefixed_name", None) or "value"
        reason = f"not a valid {type_name}"
    value = error.obj
    if value is not None and not isinstance(value, (Element, Mapping, list, tuple)):
        reason = f"{echo(str(value))!r}: {reason}"
    # Element-level reasons quote names taken from the document (an unknown
    # attribute or the root's tag): those are cut like any echoed input.
    reason = _QUOTED.sub(lambda quoted: repr(echo(quoted[1])), reason)
    return Violation(_cap(reason), pointer=_cap(location))


def _children_detail(error: XMLSchemaChildrenValidationError) -> str:
    expected = [tag.rsplit("}", 1)[-1] for tag in error.expected_tags[:5]]
    wanted = f"; expected {' or '.join(expected)}" if expected else ""
    if error.invalid_tag is None:
        return f"content is incomplete{wanted}"
    tag = echo(error.invalid_tag.rsplit("}", 1)[-1])
    return _cap(f"unexpected element {tag!r} at position {error.index + 1}{wanted}")


def _cap(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"
