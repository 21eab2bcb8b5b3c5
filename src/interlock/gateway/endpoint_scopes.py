"""The scope check of the gateway's own APIs (the vault, data-subject requests).

An own API takes a credential of the gateway's clients and one of
:data:`~interlock.config.manifest.GATEWAY_SCOPES`. An access token must have
been issued for this gateway: a token for some systems (RFC 8707 audience) is a
token for another resource (RFC 9068 §4) and gets ``invalid_token``, as on a
route; a credential without the scope gets ``insufficient_scope`` naming it.
"""

from __future__ import annotations

from interlock.errors import Refusal
from interlock.identity.grants import Principal

__all__ = ["require_gateway_scope"]


def require_gateway_scope(principal: Principal, scope: str, *, api: str, what: str) -> None:
    """Refuse ``principal`` unless it holds ``scope`` for this gateway.

    ``api`` names the API in the operator's log (``vault``); ``what`` tells the
    caller what requires the scope (``the vault requires``).
    """
    if principal.method == "oauth2" and not principal.for_gateway:
        raise Refusal(
            "unauthorized",
            "the access token is not for this gateway: request one with resource set to "
            "the gateway's URL (its issuer)",
            headers={"WWW-Authenticate": 'Bearer realm="interlock", error="invalid_token"'},
            log_reason=f"{api}: token audience is not the gateway",
        )
    if scope not in principal.scopes:
        raise Refusal(
            "insufficient-scope",
            f"{what} the scope '{scope}'",
            headers={
                "WWW-Authenticate": (
                    f'Bearer realm="interlock", error="insufficient_scope", scope="{scope}"'
                )
            },
            extra={"required_scope": scope},
            log_reason=f"{api}: missing scope {scope}",
        )
