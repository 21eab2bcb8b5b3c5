"""Refuse credentials in the query string before anything else looks at them."""

from __future__ import annotations

from urllib.parse import parse_qsl

from interlock.credentials.keyformat import PREFIXES
from interlock.credentials.names import is_credential_parameter
from interlock.errors import Refusal
from interlock.gateway.context import RequestContext

__all__ = ["QueryCredentialGuard"]


class QueryCredentialGuard:
    """A key in the URL ends up in access logs, proxies and browser history (RFC 6750 §2.3)."""

    async def __call__(self, ctx: RequestContext) -> None:
        """Refuse with 400 if any query parameter looks like a credential."""
        if not ctx.query:
            return
        for name, value in parse_qsl(ctx.query, keep_blank_values=True):
            if (
                is_credential_parameter(name)
                or value.startswith(PREFIXES)
                or name.startswith(PREFIXES)
            ):
                raise Refusal(
                    "credential-in-url",
                    "credentials are not accepted in the query string: URLs are logged "
                    "and cached along the way; send the key in the Authorization header "
                    "(Bearer) or X-API-Key instead, and rotate this one",
                    log_reason="credential in query string",
                )
