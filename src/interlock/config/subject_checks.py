"""Subject locators that could never find anything, or that the register would not show.

An integration's ``subjects`` apply to each of its routes, a route's to
itself; each is checked against every route it applies to:

* errors — a ``json`` that is neither an RFC 6901 pointer nor an RFC 9535
  JSONPath, an ``xml`` that is no ElementTree path; a ``path`` locator naming
  a parameter the route's path does not have; a request-body locator for a
  media type the route does not accept (``csv_column`` on a JSON-only route);
  a CSV or XML response locator on a route with ``response_fields`` (it relays
  JSON responses only);
* warnings — a ``query`` locator for a parameter the route's ``query`` does
  not list (the gateway refuses such a request, so it never matches); an
  ``email`` or ``phone`` locator on an integration whose ``data_categories``
  do not cover ``user.contact.email`` / ``user.contact.phone_number``: the
  gateway would trace people by a category the Art. 30 register does not list.

Findings are ``(path, message, is_error)`` for :mod:`interlock.config.checks`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final

from interlock.config.field_categories import covered
from interlock.config.locators import check_xml_path, compile_json
from interlock.config.manifest import Route, SubjectLocator, media_kind, template_params
from interlock.config.yaml_source import DocPath

__all__ = ["subject_findings"]

Found = tuple[DocPath, str, bool]

# The fideslang category an identifier kind is personal data of.
_CATEGORY: Final = {"email": "user.contact.email", "phone": "user.contact.phone_number"}
_NOUN: Final = {"json": "JSON", "csv": "CSV", "xml": "XML"}


def subject_findings(
    flow: str,
    integration_subjects: Sequence[SubjectLocator],
    routes: Sequence[tuple[int, Route]],
    declared: tuple[str, ...],
) -> Iterator[Found]:
    """Every problem of ``flow``'s locators (its own and its routes') against its routes."""
    at: DocPath = ("integrations", flow)
    for number, locator in enumerate(integration_subjects):
        where: DocPath = (*at, "subjects", number)
        yield from _own(where, locator, flow, declared)
        for _, route in routes:
            yield from _against(where, locator, route, f"route {route.label}: ")
    for index, route in routes:
        for number, locator in enumerate(route.subjects):
            where = (*at, "routes", index, "subjects", number)
            yield from _own(where, locator, flow, declared)
            yield from _against(where, locator, route, "")


def _own(
    where: DocPath, locator: SubjectLocator, flow: str, declared: tuple[str, ...]
) -> Iterator[Found]:
    """What is wrong with the locator whatever the route: its paths, its kind's category."""
    if locator.json_path is not None:
        try:
            compile_json(locator.json_path)
        except ValueError as error:
            yield (*where, "json"), str(error), True
    if locator.xml is not None:
        try:
            check_xml_path(locator.xml)
        except ValueError as error:
            yield (*where, "xml"), str(error), True
    category = _CATEGORY.get(locator.kind)
    if category is not None and not covered(category, declared):
        yield (
            (*where, "kind"),
            f"{locator.kind} identifies people by {category}, which integration {flow} does "
            "not declare in data_categories: the Art. 30 register would not show the data "
            "that traces them (add it, or an ancestor such as user.contact)",
            False,
        )


def _against(where: DocPath, locator: SubjectLocator, route: Route, prefix: str) -> Iterator[Found]:
    """What makes the locator impossible (or pointless) on ``route``."""
    if locator.in_ == "path" and locator.param not in template_params(route.path):
        known = ", ".join(template_params(route.path)) or "none"
        yield (
            (*where, "param"),
            f"{prefix}{locator.param!r} is not a parameter of the path {route.path} "
            f"(its parameters: {known})",
            True,
        )
    elif locator.in_ == "query" and locator.param not in route.query:
        yield (
            (*where, "param"),
            f"{prefix}{locator.param!r} is not in the route's query parameters, so the "
            "gateway refuses requests that carry it and this locator never matches; "
            "declare it under the route's query",
            False,
        )
    body = _body_kind(locator)
    if body is None:
        return
    key = {"json": "json", "csv": "csv_column", "xml": "xml"}[body]
    if locator.in_ == "request":
        accepted = {media_kind(media) for media in route.accepted_types}
        if body not in accepted:
            yield (
                (*where, key),
                f"{prefix}a {_NOUN[body]} request locator, but the route accepts only "
                f"{', '.join(route.accepted_types)}: it could never match",
                True,
            )
    elif body != "json" and route.response_fields is not None:
        yield (
            (*where, key),
            f"{prefix}a {_NOUN[body]} response locator, but the route's response_fields "
            "relay JSON responses only: it could never match",
            True,
        )


def _body_kind(locator: SubjectLocator) -> str | None:
    if locator.json_path is not None:
        return "json"
    if locator.csv_column is not None:
        return "csv"
    if locator.xml is not None:
        return "xml"
    return None
