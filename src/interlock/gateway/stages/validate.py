"""Boundary validation of a route: parameters, body, schema, business rules, minimisation.

Runs after the replay guard, so only authenticated, authorised, admitted and
fresh requests cost parsing. In order, every step refusing with a problem:

1. path and query parameters against the route's types and patterns (400);
2. a body: ``Content-Encoding`` other than identity (415), media type outside
   the route's list (415), a JSON, XML or CSV body declared in a charset other
   than UTF-8 (415), more than ``max_body`` bytes (413, before reading);
3. by media type: JSON (strict parse within ``json_limits``, 400; then the
   route's JSON Schema, every violation at once, 422), XML (defusedxml, no DTD
   or entities, 400; optional XSD, 422) or CSV (shape limits 400/413, formula
   cells neutralised in the forwarded body);
4. business rules (422, or 503 when a rule cannot be evaluated);
5. ``request_fields``: the forwarded JSON body keeps only those fields.

A body of those three kinds is read as UTF-8, so it is forwarded as UTF-8:
``Content-Type: <media type>; charset=utf-8``, the caller's parameters dropped.
A ``charset`` the upstream would decode by (RFC 7303 §3.2: for XML it wins
over the document's own declaration) would otherwise make it read another
document than the one checked — ``+ACI-`` is a quote in UTF-7.

Large bodies are parsed off the event loop. Problem details name the field
and the rule, never internal paths, stack frames, SQL or upstream text.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from interlock.config.manifest import CsvPolicy, Route, XmlPolicy, media_kind
from interlock.errors import Refusal
from interlock.gateway.body import announced_too_large
from interlock.gateway.context import RequestContext
from interlock.validation.csv_body import check_csv
from interlock.validation.errors import BodyRefused
from interlock.validation.exact_numbers import dumps_exact
from interlock.validation.json_body import parse_json
from interlock.validation.minimise import FieldFilter, NotFilterable, minimise_body
from interlock.validation.params import ParamCheck
from interlock.validation.rules import RuleInput, RuleSet, RuleUnavailableError
from interlock.validation.schema import RequestSchema
from interlock.validation.xml_body import XsdSchema, parse_xml

__all__ = ["MinimisedForward", "Validation"]

Terminal = Callable[[RequestContext], Awaitable[web.Response]]

_XML: Final = XmlPolicy()  # for a route that lists an XML type without an xml: policy
_CSV: Final = CsvPolicy()
_INLINE_BYTES: Final = 64 * 1024  # bodies up to this size are parsed on the event loop
_BODYLESS: Final = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
# Every mention of a charset parameter, and the one form taken: utf-8, quoted or not
# (RFC 9110 §8.3.2: case-insensitive). Anything else that says "charset" — another
# charset, a second one, charset*= (RFC 2231), one inside a quoted value that
# parsers split differently — is refused rather than interpreted.
_CHARSET_WORD: Final = re.compile("charset", re.IGNORECASE)
_UTF8: Final = re.compile(r'charset[ \t]*=[ \t]*(?:utf-8|"utf-8")[ \t]*(?:;|$)', re.IGNORECASE)
# Headers that describe the upstream's exact bytes: wrong once the body is cut down.
_STALE_AFTER_FILTER: Final = ("Content-Length", "ETag", "Content-MD5", "Digest", "Content-Digest")


def _unsupported(route: Route, detail: str) -> BodyRefused:
    # RFC 7694 §3: say which content coding is accepted.
    return BodyRefused(
        "unsupported-media-type",
        f"{detail}; this route accepts {', '.join(route.accepted_types)}",
        headers={"Accept-Encoding": "identity"},
    )


class Validation:
    """The validation stage of one route, assembled once."""

    def __init__(
        self,
        route: Route,
        *,
        schema: RequestSchema | None = None,
        xsd: XsdSchema | None = None,
        rules: RuleSet | None = None,
        label: str = "",
    ) -> None:
        """Check with the route's compiled ``schema``, ``xsd`` and ``rules``."""
        self._route = route
        self._params = ParamCheck(route)
        self._schema = schema
        self._xsd = xsd
        self._rules = rules
        self._label = label
        self._accepted = frozenset(t.lower() for t in route.accepted_types)
        self._request_filter = (
            FieldFilter(route.request_fields) if route.request_fields is not None else None
        )

    async def __call__(self, ctx: RequestContext) -> None:
        """Refuse the request with a problem, or let it through (its body possibly rewritten)."""
        try:
            await self._validate(ctx)
        except RuleUnavailableError as exc:
            # The caller learns neither the rule's name nor why: that is for the operator.
            raise Refusal(
                "rule-unavailable",
                "this request cannot be checked right now; retry shortly",
                headers={"Retry-After": "5"},
                log_reason=exc.message,
            ) from None

    async def _validate(self, ctx: RequestContext) -> None:
        request = ctx.request
        self._params.check(ctx.match.values, ctx.query)
        parsed: Any = None
        if self._has_body(request):
            if not self._route.takes_body:  # never forwarded unchecked (Route.takes_body)
                raise BodyRefused("body-not-allowed", "this route takes no request body")
            parsed = await self._body(ctx)
        elif self._schema is not None and request.method not in _BODYLESS:
            raise BodyRefused("body-required", "this route needs a JSON body")
        if self._rules is not None:
            data = RuleInput(
                parsed,
                dict(ctx.match.values),
                dict(request.rel_url.query),
                ctx.principal.client if ctx.principal is not None else "",
                self._label,
            )
            await asyncio.to_thread(self._rules.check, data)
        if self._request_filter is not None and parsed is not None:
            parsed, removed = self._request_filter.apply(parsed)
            ctx.body = dumps_exact(parsed).encode()  # exact: numbers may be Decimal
            ctx.removed_fields += removed
        ctx.parsed = parsed  # as forwarded: subject locators read what the upstream receives

    @staticmethod
    def _has_body(request: web.BaseRequest) -> bool:
        length = request.content_length
        return bool(length) or (length is None and "Transfer-Encoding" in request.headers)

    async def _body(self, ctx: RequestContext) -> Any:
        request = ctx.request
        route = self._route
        too_large = announced_too_large(request, route.max_body)  # first: it costs nothing
        if too_large is not None:
            raise too_large
        encodings = request.headers.getall("Content-Encoding", [])
        if any(
            e.strip().lower() not in {"", "identity"}
            for value in encodings
            for e in value.split(",")
        ):
            raise _unsupported(route, "compressed request bodies are not accepted")
        if "Content-Type" not in request.headers:
            raise _unsupported(route, "the request has a body but no Content-Type")
        media = request.content_type.lower()
        if media not in self._accepted:
            raise _unsupported(route, f"{media} is not accepted")
        kind = media_kind(media)
        if kind != "other":
            if not _declares_utf8(request.headers["Content-Type"]):
                raise _unsupported(
                    route, "the body must be UTF-8: send charset=utf-8 or no charset parameter"
                )
            ctx.content_type = f"{media}; charset=utf-8"
        body = await ctx.read_body()
        if kind == "json":
            return await self._off_loop(body, self._json, body)
        if kind == "xml":
            await self._off_loop(body, parse_xml, body, route.xml or _XML, self._xsd)
        elif kind == "csv":
            result = await self._off_loop(body, check_csv, body, route.csv or _CSV)
            ctx.body = result.body
        return None

    def _json(self, body: bytes) -> Any:
        value = parse_json(body, self._route.json_limits)
        if self._schema is not None:
            self._schema.check(value)
        return value

    @staticmethod
    async def _off_loop(body: bytes, function: Callable[..., Any], *args: Any) -> Any:
        if len(body) <= _INLINE_BYTES:
            return function(*args)
        return await asyncio.to_thread(function, *args)


def _declares_utf8(content_type: str) -> bool:
    """Whether ``content_type`` names no charset, or names utf-8 once and plainly."""
    mentions = [found.start() for found in _CHARSET_WORD.finditer(content_type)]
    return not mentions or (
        len(mentions) == 1 and _UTF8.match(content_type, mentions[0]) is not None
    )


class MinimisedForward:
    """The upstream call, with the response cut to the route's ``response_fields``.

    Fail closed: a response with a body that cannot be filtered (not JSON, or
    compressed) is refused with 502 rather than relayed whole.
    """

    def __init__(self, fields: FieldFilter, forward: Terminal) -> None:
        """Filter what ``forward`` returns with ``fields``."""
        self._fields = fields
        self._forward = forward

    async def __call__(self, ctx: RequestContext) -> web.Response:
        """Call upstream, then keep only the allowed fields."""
        response = await self._forward(ctx)
        body = response.body
        if not isinstance(body, bytes) or not body:
            return response
        if response.headers.get("Content-Encoding", "identity").lower() != "identity":
            raise _not_filterable("a compressed response")
        # The whole header: aiohttp's content_type has dropped the charset parameter,
        # and a body read and rewritten as UTF-8 must not go out labelled otherwise.
        content_type = response.headers.get("Content-Type")
        try:
            if len(body) <= _INLINE_BYTES:
                filtered, removed = minimise_body(body, content_type, self._fields)
            else:
                filtered, removed = await asyncio.to_thread(
                    minimise_body, body, content_type, self._fields
                )
        except NotFilterable:
            raise _not_filterable(f"a {response.content_type or 'typeless'} response") from None
        ctx.removed_fields += removed
        headers = response.headers.copy()
        for name in _STALE_AFTER_FILTER:
            headers.popall(name, None)
        return web.Response(status=response.status, body=filtered, headers=headers)


def _not_filterable(what: str) -> Refusal:
    return Refusal(
        "response-not-filterable",
        "the upstream answered with a response this route's field allow-list cannot be "
        "applied to, so it is not relayed",
        log_reason=f"response minimisation impossible: {what}",
    )
