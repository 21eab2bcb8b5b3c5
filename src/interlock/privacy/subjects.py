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

from collections.abc import Mapping, Sequence
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
from interlock.privacy.subject_bodies import (
    Unreadable,
    csv_cells,
    json_document,
    xml_root,
    xml_texts,
)

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
    """One locator, compiled: where to look, what kind, and who receives it.

    ``answered``: the receivers once the upstream answered 2xx; ``otherwise``:
    before, or after another answer (``caller`` dropped).
    """

    kind: str
    region: str | None
    answered: tuple[Receiver, ...]
    otherwise: tuple[Receiver, ...]
    param: str = ""
    json: JsonLocator | None = None
    csv_column: str = ""
    xml: str = ""

    def receivers(self, answered: bool) -> tuple[Receiver, ...]:
        return self.answered if answered else self.otherwise


@dataclass(slots=True)
class _Collector:
    """One extraction's sightings, deduplicated and capped."""

    kept: dict[tuple[str, str, str], Sighting] = field(default_factory=dict)
    unparsed: int = 0
    overflow: int = 0

    def offer(
        self,
        locator: _Locator,
        raw: object,
        receivers: tuple[Receiver, ...],
        direction: Direction,
    ) -> None:
        if not receivers:
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
        for receiver in receivers:
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
            spec.kind,
            spec.region,
            receivers,
            tuple(r for r in receivers if r != "caller"),
            spec.param or "",
            compiled,
            spec.csv_column or "",
            spec.xml or "",
        )
        {
            "path": self._path,
            "query": self._query,
            "request": self._request,
            "response": self._response,
        }[spec.in_].append(locator)

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
            value = params.get(locator.param)
            if value is not None:
                out.offer(locator, value, locator.receivers(answered), "request")
        for locator in self._query:
            for value in _values(query, locator.param):
                out.offer(locator, value, locator.receivers(answered), "request")
        if self._request and (body or parsed_json is not None):
            self._body(out, self._request, answered, parsed_json, body, media_type, "request")
        return out.found()

    def from_response(self, body: bytes | None, media_type: str | None, status: int) -> Found:
        """Sightings in the upstream's answer as relayed (after response minimisation).

        ``caller`` sightings only when ``status`` is 2xx; the ``upstream`` ones
        (``received_by: upstream`` on a response locator) whatever it answered.
        """
        if not self._response or not body:
            return Found()
        out = _Collector()
        answered = status in _SUCCESS
        self._body(out, self._response, answered, None, body, media_type, "response")
        return out.found()

    def _body(  # noqa: PLR0917  (one body's parts, read for one direction)
        self,
        out: _Collector,
        locators: list[_Locator],
        answered: bool,
        parsed_json: Any | None,
        body: bytes | None,
        media_type: str | None,
        direction: Direction,
    ) -> None:
        kind = media_kind(media_type) if media_type else "other"
        if kind == "json":
            chosen = [x for x in locators if x.json is not None and x.receivers(answered)]
        elif kind == "csv":
            chosen = [x for x in locators if x.csv_column and x.receivers(answered)]
        elif kind == "xml":
            chosen = [x for x in locators if x.xml and x.receivers(answered)]
        else:
            return
        if not chosen:
            return
        try:
            if kind == "json":
                document = json_document(body or b"") if parsed_json is None else parsed_json
                found = [(x, value) for x in chosen if x.json for value in x.json.find(document)]
            elif kind == "csv":
                # The gateway neutralised the request; an answer is as the upstream wrote it.
                strip = direction == "request" and self._csv.neutralise_formulas
                columns = [x.csv_column for x in chosen]
                cells = csv_cells(body or b"", self._csv.delimiter, columns, strip=strip)
                found = [(chosen[i], cell) for i, cell in cells]
            else:
                root = xml_root(body or b"", self._xml)
                found = [(x, text) for x in chosen for text in xml_texts(root, x.xml)]
        except Unreadable:
            out.unparsed += len(chosen)
            return
        for locator, value in found:
            out.offer(locator, value, locator.receivers(answered), direction)


def _values(query: Mapping[str, str], name: str) -> list[str]:
    if isinstance(query, MultiMapping):
        return list(query.getall(name, []))
    value = query.get(name)
    return [] if value is None else [value]
