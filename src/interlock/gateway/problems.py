"""RFC 9457 problem responses: the only shape a refusal takes.

Bodies carry ``type``, ``title``, ``status``, ``detail``, ``instance`` and
``correlation_id`` — never internal detail (paths, stack frames, upstream
error text). The correlation id is also sent as ``X-Request-Id`` so an
operator can find the log line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from interlock.identity.grants import Principal

__all__ = ["PROBLEM_TYPE_BASE", "Problem", "Refusal", "problem_response"]

PROBLEM_TYPE_BASE: Final = "urn:interlock:problem:"
CONTENT_TYPE: Final = "application/problem+json"


@dataclass(frozen=True)
class Problem:
    """A refusal: HTTP status, a stable code, a title and a caller-safe detail."""

    status: int
    code: str
    title: str
    detail: str
    headers: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, object] = field(default_factory=dict)


class Refusal(Exception):  # noqa: N818  (a control-flow signal, not an error condition)
    """Raised by a pipeline stage to stop the request with ``problem``."""

    def __init__(self, problem: Problem, log_reason: str | None = None) -> None:
        super().__init__(problem.title)
        self.problem = problem
        self.log_reason = log_reason or problem.detail
        # Set by the gateway once known, for metrics and the access log.
        self.route_label: str | None = None
        self.principal: Principal | None = None


def problem_response(problem: Problem, correlation_id: str, instance: str) -> web.Response:
    """The ``application/problem+json`` response for ``problem``."""
    body = {
        "type": PROBLEM_TYPE_BASE + problem.code,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": instance,
        "correlation_id": correlation_id,
        **problem.extra,
    }
    headers = {"X-Request-Id": correlation_id, "Cache-Control": "no-store", **problem.headers}
    return web.Response(
        status=problem.status,
        body=json.dumps(body).encode(),
        content_type=CONTENT_TYPE,
        headers=headers,
    )
