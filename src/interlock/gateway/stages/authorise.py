"""May the caller use this route: the route's scope must be among the caller's."""

from __future__ import annotations

from interlock.gateway.context import RequestContext
from interlock.gateway.problems import Problem, Refusal

__all__ = ["ScopeCheck"]


class ScopeCheck:
    """403 naming the missing scope — and nothing else about the caller's grants."""

    def __init__(self, scope: str) -> None:
        """Require ``scope``."""
        self._scope = scope

    async def __call__(self, ctx: RequestContext) -> None:
        """Refuse unless the principal holds the scope."""
        principal = ctx.principal
        if principal is not None and self._scope in principal.scopes:
            return
        raise Refusal(
            Problem(
                403,
                "insufficient-scope",
                "Insufficient scope",
                f"this route requires the scope '{self._scope}'",
                {
                    "WWW-Authenticate": (
                        f'Bearer realm="interlock", error="insufficient_scope", '
                        f'scope="{self._scope}"'
                    )
                },
                {"required_scope": self._scope},
            ),
            log_reason=f"missing scope {self._scope}",
        )
