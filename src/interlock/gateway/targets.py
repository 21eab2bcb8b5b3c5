"""From a request target to a route: the one place a path is checked and matched.

The embedded gateway (:mod:`interlock.gateway.app`) and the edge decision
(:mod:`interlock.gateway.edge.decision`) both route through here, so a path
refused in one mode (an encoded ``..``, a ``//``, a ``;``) is refused the same
way in the other.
"""

from __future__ import annotations

from aiohttp import web

from interlock.errors import Refusal
from interlock.gateway.paths import BadPathError, split_target
from interlock.gateway.routing import (
    MethodNotAllowedError,
    RouteMatch,
    RouteTable,
    UnknownRouteError,
)

__all__ = ["match_target"]


def match_target(routes: RouteTable, request: web.BaseRequest) -> tuple[RouteMatch, str]:
    """The route ``request`` is for and its raw query; a refusal (400, 404, 405) otherwise."""
    try:
        segments, query = split_target(request.raw_path)
        return routes.match(request.method, segments), query
    except BadPathError as exc:
        raise Refusal("bad-path", str(exc)) from None
    except UnknownRouteError:
        raise Refusal("not-found", "no route matches this path") from None
    except MethodNotAllowedError as exc:
        allowed = ", ".join(exc.allowed)
        raise Refusal(
            "method-not-allowed", f"this path accepts {allowed}", headers={"Allow": allowed}
        ) from None
