"""Data subjects identified in a route's traffic (the manifest's ``subjects`` locators).

A :class:`Sighting` is one identified person in one request: the identifier's
kind and normalised value (:mod:`interlock.gdpr.identifiers`), which side
received data about them, and in which direction it travelled. Sightings live
only for the request: the gateway turns them into keyed hashes for the lineage
index (:mod:`interlock.privacy.lineage`) and never logs or stores the value.

:class:`RouteSubjects` holds a route's locators (its integration's, then its
own) compiled once, and reads them out of one request:

* **who received it**: a locator's receivers (``received_by``). ``upstream``
  holds whenever the request was forwarded — both extraction methods assume
  it was, the gateway calls them only then — and ``caller`` only when the
  upstream answered 2xx (else the caller got an error, not the data). A path
  parameter the route's ``upstream_path`` leaves out never reaches the upstream;
* **what counts**: strings, and integers (ids), at the located place; ``null``,
  booleans, decimals, objects and arrays are not identifiers and are skipped.
  A value that does not normalise (``not-an-email`` under ``kind: email``) is
  not recorded but counted in :attr:`Found.unparsed`, and so is each locator
  whose body could not be parsed (a malformed upstream response);
* **how much**: at most :data:`MAX_SIGHTINGS` per request, deduplicated on
  (kind, value, receiver); identifiers past the cap are counted in
  :attr:`Found.overflow` without being normalised (a body of a million
  addresses costs the parse, not a million normalisations).

Bodies are read by media type (:func:`~interlock.config.manifest.media_kind`):
JSON by the compiled pointer or JSONPath (:mod:`interlock.config.locators`);
CSV by column header with the route's delimiter, on the body as forwarded —
a cell the gateway prefixed with ``'`` against formula injection is read
without that prefix, so ``'+49 30 ...`` is still the phone ``+49 30 ...``;
XML parsed by defusedxml (:func:`~interlock.validation.xml_body.parse_xml`)
and searched with ElementTree ``findall``, the text of elements without
children. A locator for another media type than the body's finds nothing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from multidict import MultiMapping

from interlock.config.locators import JsonLocator, compile_json
from interlock.config.manifest import (
    CsvPolicy,
    Route,
    SubjectLocator,
    XmlPolicy,
    media_kind,
    template_params,
)
from interlock.gdpr.identifiers import IdentifierError, normalise
from interlock.validation.csv_body import neutralise_formulas
from interlock.validation.errors import BodyRefused
from interlock.validation.xml_body import parse_xml

__all__ = ["MAX_SIGHTINGS", "Found", "RouteSubjects", "Sighting"]

MAX_SIGHTINGS: Final = 256
"""Sightings recorded for one request; identifiers past it are only counted."""

Receiver = Literal["upstream", "caller"]
Direction = Literal["request", "response"]

_SUCCESS: Final = range(200, 300)


@dataclass(frozen=True, slots=True)
class Sighting:
    """One person identified in one request (the value is normalised, never logged)."""

    kind: str
    value: str = field(repr=False)
    receiver: Literal["upstream", "caller"]
    direction: Literal["request", "response"]


@dataclass(frozen=True, slots=True)
class Found:
    """What one extraction found: the sightings, and what it had to leave out.

    ``unparsed``: values that did not normalise, plus locators whose body could
    not be parsed; ``overflow``: identifiers past :data:`MAX_SIGHTINGS`.
    """

    sightings: tuple[Sighting, ...] = ()
    unparsed: int = 0
    overflow: int = 0

    def __add__(self, other: Found) -> Found:
        """Both, deduplicated on (kind, value, receiver) and capped (the first kept wins)."""
        merged = _Collector()
        for sighting in (*self.sightings, *other.sightings):
            merged.keep(sighting)
        return Found(
            tuple(merged.kept.values()),
            self.unparsed + other.unparsed,
            self.overflow + other.overflow + merged.overflow,
        )


@dataclass(frozen=True, slots=True)
class _Locator:
    """One locator, compiled: where to look, what kind, and who receives it."""

    kind: str
    region: str | None
    receivers: tuple[Receiver, ...]
    param: str | None = None
    json: JsonLocator | None = None
    csv_column: str | None = None
    xml: str | None = None


@dataclass(slots=True)
class _Collector:
    """One extraction's sightings, deduplicated and capped."""

    kept: dict[tuple[str, str, str], Sighting] = field(default_factory=dict)
    unparsed: int = 0
    overflow: int = 0

    def offer(self, locator: _Locator, raw: object, direction: Direction) -> None:
        if not locator.receivers:
            return  # nobody received it (yet): not even worth normalising
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            return  # null, true/false, numbers with a fraction, objects, arrays
        if len(self.kept) >= MAX_SIGHTINGS:
            self.overflow += 1  # not normalised: past the cap a value costs a count only
            return
        try:
            value = normalise(locator.kind, str(raw), region=locator.region)
        except IdentifierError:
            self.unparsed += 1
            return
        for receiver in locator.receivers:
            self.keep(Sighting(locator.kind, value, receiver, direction))

    def keep(self, sighting: Sighting) -> None:
        key = (sighting.kind, sighting.value, sighting.receiver)
        if key in self.kept:
            return
        if len(self.kept) >= MAX_SIGHTINGS:
            self.overflow += 1
            return
        self.kept[key] = sighting

    def found(self) -> Found:
        return Found(tuple(self.kept.values()), self.unparsed, self.overflow)


class RouteSubjects:
    """A route's subject locators compiled once; false when it has none (nothing to pay)."""

    def __init__(self, locators: Sequence[SubjectLocator], route: Route) -> None:
        """Compile ``locators`` for ``route``; :class:`ValueError` names a ``json`` that cannot be.

        Use :meth:`for_route` for a manifest route (its integration's locators
        and its own).
        """
        template = route.upstream_path if route.upstream_path is not None else route.path
        self._upstream_params = frozenset(template_params(template))
        self._csv = route.csv or CsvPolicy()
        self._xml = route.xml or XmlPolicy()
        self._path: list[_Locator] = []
        self._query: list[_Locator] = []
        self._request: list[_Locator] = []
        self._response: list[_Locator] = []
        for spec in locators:
            self._add(spec)

    @classmethod
    def for_route(
        cls, integration_subjects: Sequence[SubjectLocator], route: Route
    ) -> RouteSubjects:
        """The locators of ``route``: its integration's ``subjects``, then the route's own."""
        return cls((*integration_subjects, *route.subjects), route)

    def __bool__(self) -> bool:
        """Whether the route has any locator at all."""
        return bool(self._path or self._query or self._request or self._response)

    def _add(self, spec: SubjectLocator) -> None:
        try:
            compiled = compile_json(spec.json_path) if spec.json_path is not None else None
        except ValueError as error:
            raise ValueError(f"subject locator json: {error}") from None
        receivers = tuple(sorted(spec.receivers, reverse=True))  # upstream first
        if spec.in_ == "path" and spec.param not in self._upstream_params:
            # A parameter the upstream path leaves out never reaches the upstream.
            receivers = tuple(r for r in receivers if r != "upstream")
        locator = _Locator(
            spec.kind, spec.region, receivers, spec.param, compiled, spec.csv_column, spec.xml
        )
        if spec.in_ == "path":
            self._path.append(locator)
        elif spec.in_ == "query":
            self._query.append(locator)
        elif spec.in_ == "request":
            self._request.append(locator)
        else:
            self._response.append(locator)

    def from_request(
        self,
        params: Mapping[str, str],
        query: Mapping[str, str],
        parsed_json: Any | None,
        body: bytes | None,
        media_type: str | None,
        *,
        status: int | None = None,
    ) -> Found:
        """Sightings in a forwarded request: path ``params``, ``query`` (multi-valued or not), body.

        ``parsed_json`` is the body as the gateway parsed it (after request
        minimisation); ``body`` is read for CSV and XML, or JSON not yet parsed.
        ``status`` is the upstream's answer: ``caller`` sightings only when it
        is 2xx; ``None`` (not answered yet) gives ``upstream`` sightings only.
        """
        answered = status in _SUCCESS
        out = _Collector()
        for locator in self._path:
            value = params.get(locator.param or "")
            if value is not None:
                out.offer(_only(locator, answered), value, "request")
        for locator in self._query:
            for value in _values(query, locator.param or ""):
                out.offer(_only(locator, answered), value, "request")
        if self._request and (body is not None or parsed_json is not None):
            locators = [_only(locator, answered) for locator in self._request]
            self._body(out, locators, parsed_json, body, media_type, "request")
        return out.found()

    def from_response(self, body: bytes | None, media_type: str | None, status: int) -> Found:
        """Sightings in the upstream's answer as relayed (after response minimisation).

        ``caller`` sightings only when ``status`` is 2xx; the ``upstream`` ones
        (``received_by: upstream`` on a response locator) whatever it answered.
        """
        if not self._response or not body:
            return Found()
        answered = status in _SUCCESS
        out = _Collector()
        locators = [_only(locator, answered) for locator in self._response]
        self._body(out, locators, None, body, media_type, "response")
        return out.found()

    def _body(  # noqa: PLR0917
        self,
        out: _Collector,
        locators: list[_Locator],
        parsed_json: Any | None,
        body: bytes | None,
        media_type: str | None,
        direction: Direction,
    ) -> None:
        locators = [locator for locator in locators if locator.receivers]
        kind = media_kind(media_type) if media_type else "other"
        if not locators or kind == "other":
            return
        if kind == "json":
            _from_json(
                out, [x for x in locators if x.json is not None], parsed_json, body, direction
            )
        elif kind == "csv" and body is not None:
            chosen = [x for x in locators if x.csv_column is not None]
            # The gateway neutralised the request's cells; an upstream's answer is as it wrote it.
            strip = direction == "request" and self._csv.neutralise_formulas
            _from_csv(out, chosen, body, self._csv.delimiter, strip=strip, direction=direction)
        elif kind == "xml" and body is not None:
            _from_xml(out, [x for x in locators if x.xml is not None], body, self._xml, direction)


def _replace(locator: _Locator, receivers: tuple[Receiver, ...]) -> _Locator:
    return _Locator(
        locator.kind,
        locator.region,
        receivers,
        locator.param,
        locator.json,
        locator.csv_column,
        locator.xml,
    )


def _only(locator: _Locator, answered: bool) -> _Locator:
    """``locator`` with the receivers that hold: ``caller`` only once the upstream answered 2xx."""
    if answered or "caller" not in locator.receivers:
        return locator
    return _replace(locator, tuple(r for r in locator.receivers if r != "caller"))


def _values(query: Mapping[str, str], name: str) -> list[str]:
    if isinstance(query, MultiMapping):
        return list(query.getall(name, []))
    value = query.get(name)
    return [] if value is None else [value]


def _from_json(
    out: _Collector,
    locators: list[_Locator],
    parsed: Any | None,
    body: bytes | None,
    direction: Direction,
) -> None:
    if not locators:
        return
    if parsed is None and body:
        try:
            parsed = json.loads(body.decode("utf-8").removeprefix("\ufeff"))
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            out.unparsed += len(locators)
            return
    for locator in locators:
        if locator.json is not None:
            for value in locator.json.find(parsed):
                out.offer(locator, value, direction)


def _from_csv(
    out: _Collector,
    locators: list[_Locator],
    body: bytes,
    delimiter: str,
    *,
    strip: bool,
    direction: Direction,
) -> None:
    if not locators:
        return
    try:
        for record in _csv_records(body, delimiter, strip=strip):
            header, row = record
            for locator in locators:
                index = header.get(locator.csv_column or "")
                if index is not None and index < len(row) and row[index]:
                    out.offer(locator, row[index], direction)
    except (ValueError, csv.Error):
        out.unparsed += len(locators)


def _csv_records(
    body: bytes, delimiter: str, *, strip: bool
) -> Iterator[tuple[dict[str, int], list[str]]]:
    """Each data row with the header's column name -> index (the first column of a name)."""
    text = body.decode("utf-8").removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: dict[str, int] | None = None
    for record in reader:
        cells = [_unneutralised(cell) for cell in record] if strip else record
        if header is None:
            header = {}
            for index, name in enumerate(cells):
                header.setdefault(name.strip(), index)
            continue
        yield header, cells


def _unneutralised(cell: str) -> str:
    """``cell`` without the ``'`` the gateway put before a formula character."""
    if cell.startswith("'") and neutralise_formulas(cell[1:]) == cell:
        return cell[1:]
    return cell


def _from_xml(
    out: _Collector,
    locators: list[_Locator],
    body: bytes,
    policy: XmlPolicy,
    direction: Direction,
) -> None:
    if not locators:
        return
    try:
        root = parse_xml(body, policy)
    except BodyRefused:
        out.unparsed += len(locators)
        return
    for locator in locators:
        for element in root.findall(locator.xml or "."):
            if len(element) == 0 and element.text is not None:
                out.offer(locator, element.text, direction)
