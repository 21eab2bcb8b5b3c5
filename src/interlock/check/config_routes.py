"""Checklist items about the traffic of each route: minimisation, validation, limits, errors."""

from __future__ import annotations

from interlock.check.config_context import Context, no_routes
from interlock.check.results import Finding
from interlock.config.manifest import Route, media_kind

__all__ = ["input_validation", "minimisation", "rate_limiting", "sanitised_errors"]


def _closed_schema(route: Route) -> bool:
    schema = route.request_schema
    return schema is not None and schema.get("additionalProperties") is False


def minimisation(context: Context) -> Finding:
    flow = context.flow
    if not flow.routes:
        return no_routes(context, "minimisation", "which fields the flow passes")
    if not flow.personal:
        return context.finding(
            "minimisation",
            "not_applicable",
            "the integration declares no personal data (no user.* category)",
            (f"data_categories: {', '.join(flow.data_categories) or 'none'}",),
            context.at("data_categories"),
        )
    evidence, missing = [], []
    for index, route in context.routes():
        if route.method == "GET":
            if route.response_fields is None:
                missing.append((index, route, "response_fields"))
            else:
                evidence.append(f"{route.label}: response_fields ({len(route.response_fields)})")
        elif route.takes_body:
            if route.request_fields is not None:
                evidence.append(f"{route.label}: request_fields ({len(route.request_fields)})")
            elif _closed_schema(route):
                evidence.append(f"{route.label}: closed request_schema")
            else:
                missing.append((index, route, "request_fields"))
    if missing:
        index, _, field = missing[0]
        return context.finding(
            "minimisation",
            "fail",
            "routes carrying personal data pass every field: "
            + ", ".join(f"{r.label} has no {f}" for _, r, f in missing),
            evidence,
            context.at("routes", index),
            f"list the fields the purpose needs under {field} (or close the request_schema "
            "with additionalProperties: false)",
        )
    return context.finding(
        "minimisation",
        "pass",
        "every read has a response field allow-list and every write a request allow-list "
        "or a closed schema",
        evidence,
        context.at("routes"),
    )


def input_validation(context: Context) -> Finding:
    flow = context.flow
    if not flow.routes:
        return no_routes(context, "input_validation", "how messages or files are validated")
    evidence, missing = [], []
    for index, route in context.routes():
        typed = len(route.params) + len(route.query)
        if route.takes_body:
            kinds = {media_kind(t) for t in route.accepted_types}
            if "other" in kinds:
                missing.append(
                    (index, route, f"accepts unparsed {', '.join(route.accepted_types)}")
                )
                continue
            if route.request_schema is None and route.xml is None and route.csv is None:
                missing.append((index, route, "no request_schema"))
                continue
            shape = (
                "request_schema"
                if route.request_schema is not None
                else ("xml policy" if route.xml is not None else "csv policy")
            )
            evidence.append(
                f"{route.label}: {shape}, max_body {route.max_body} B, {typed} typed params"
            )
        else:
            evidence.append(
                f"{route.label}: {typed} typed params (others: default pattern or refused)"
            )
    if missing:
        index, _, _ = missing[0]
        return context.finding(
            "input_validation",
            "fail",
            "request bodies reach the upstream unchecked: "
            + ", ".join(f"{r.label} ({why})" for _, r, why in missing),
            evidence,
            context.at("routes", index),
            "add a request_schema (JSON Schema 2020-12), or an xml/csv policy, to each "
            "route that takes a body",
        )
    return context.finding(
        "input_validation",
        "pass",
        "every body is parsed with size and depth limits and checked against a schema or "
        "policy; path and query parameters are typed, undeclared query parameters refused",
        evidence,
        context.at("routes"),
    )


def rate_limiting(context: Context) -> Finding:
    flow = context.flow
    if not flow.routes:
        return no_routes(context, "rate_limiting", "throttling at the broker, share or database")
    evidence, missing = [], []
    for index, route in context.routes():
        limits = route.rate_limit
        dims = [] if limits is None else [f"{k} {v}" for k, v in limits.model_dump().items() if v]
        if dims:
            evidence.append(f"{route.label}: {', '.join(dims)}")
        else:
            missing.append((index, route))
    if missing:
        index = missing[0][0]
        return context.finding(
            "rate_limiting",
            "fail",
            f"no rate limit on {', '.join(r.label for _, r in missing)}",
            evidence,
            context.at("routes", index),
            "add rate_limit: {per_client: N/min} (and per_ip, per_route or per_integration)",
        )
    return context.finding(
        "rate_limiting", "pass", "every route has a rate limit", evidence, context.at("routes")
    )


def sanitised_errors(context: Context) -> Finding:
    if not context.flow.routes:
        return no_routes(context, "sanitised_errors", "what the transport reports on failure")
    return context.finding(
        "sanitised_errors",
        "pass",
        "by construction: the gateway answers every refusal and every upstream 5xx with an "
        "RFC 9457 problem document carrying a correlation id and no internal detail; "
        "--live sends a malformed request to confirm",
        (f"{len(context.flow.routes)} route(s) served by the gateway's pipeline",),
        context.at("routes"),
    )
