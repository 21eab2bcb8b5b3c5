"""May the caller use this route: it must be one of the route's integration's callers, and
hold the route's scope.

A route belongs to its integration, which sends its own upstream credential: a
client that is neither the integration's ``client`` nor one of its ``callers``
is refused (403) whatever scopes it holds — a scope names what may be done, the
integration whose data flow it is.

An audience-restricted access token (RFC 8707: issued for some systems only)
must also name the system this route reaches; otherwise it is a token for
another resource and is refused as ``invalid_token`` (RFC 9068 §4).
"""

from __future__ import annotations

from interlock.errors import Refusal
from interlock.gateway.context import RequestContext

__all__ = ["ScopeCheck"]


class ScopeCheck:
    """403 naming the missing scope — and nothing else about the caller's grants."""

    def __init__(
        self,
        scope: str,
        audience: str | None = None,
        methods: tuple[str, ...] | None = None,
        *,
        callers: frozenset[str],
    ) -> None:
        """Require a client among ``callers`` holding ``scope``, with a credential of one of
        ``methods`` when given.

        Tokens restricted to audiences must include ``audience``.
        """
        self._scope = scope
        self._audience = audience
        self._methods = methods
        self._callers = callers

    async def __call__(self, ctx: RequestContext) -> None:
        """Refuse unless the principal is a caller holding the scope (and, if restricted, the
        audience)."""
        principal = ctx.principal
        if principal is not None and principal.client not in self._callers:
            raise Refusal(
                "access-denied",
                "this route belongs to an integration your client does not take part in",
                log_reason=f"client {principal.client} is not a caller of the route's integration",
            )
        if principal is not None and self._methods and not principal.satisfies(self._methods):
            needs_certificate = self._methods == ("mtls",)
            raise Refusal(
                "unauthorized",
                "this route requires a client certificate (mutual TLS)"
                if needs_certificate
                else f"this route accepts only: {', '.join(self._methods)}",
                headers={"WWW-Authenticate": 'Bearer realm="interlock"'},
                log_reason=f"authenticated by {principal.method}, route needs {self._methods}",
            )
        if (
            principal is not None
            and principal.audiences is not None
            and self._audience not in principal.audiences
        ):
            raise Refusal(
                "unauthorized",
                "the access token is not valid for this resource",
                headers={"WWW-Authenticate": 'Bearer realm="interlock", error="invalid_token"'},
                log_reason="token audience does not include the route's system",
            )
        if principal is not None and self._scope in principal.scopes:
            return
        raise Refusal(
            "insufficient-scope",
            f"this route requires the scope '{self._scope}'",
            headers={
                "WWW-Authenticate": (
                    f'Bearer realm="interlock", error="insufficient_scope", scope="{self._scope}"'
                )
            },
            extra={"required_scope": self._scope},
            log_reason=f"missing scope {self._scope}",
        )
