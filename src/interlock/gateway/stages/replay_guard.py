"""The replay guard of routes with a ``replay`` policy: signed, fresh, single-use requests.

Runs after authentication, authorisation and rate limiting: the request must
carry an RFC 9421 signature by one of the *authenticated* client's signature
keys, covering the method, the target URI and (with a body) the
``Content-Digest`` of that body; its ``created`` time must lie within the
route's window and its ``nonce`` must not have been seen before — on any
replica (the replay store is Redis or the shared database).

Refusals (the caller is already authenticated, so these are 403, as AWS
answers a signature that does not match a known credential): 403
``invalid-signature`` (with ``Accept-Signature``, RFC 9421 §5, saying what to
sign) for a missing, malformed, unknown-key, foreign-key, stale, future or
non-verifying signature; 403 ``replayed-request`` for a nonce seen before;
400 ``content-digest-mismatch`` when the body is not the one that was signed;
503 when the nonce store is down (fail closed).
"""

from __future__ import annotations

import asyncio
from typing import Final

from interlock.config.manifest import ReplayPolicy
from interlock.errors import Refusal
from interlock.gateway.context import RequestContext
from interlock.gateway.hosts import GatewayNames
from interlock.replay.signatures import (
    REQUIRED_COMPONENTS,
    RequestSignatures,
    SignatureRefused,
    SignedMessage,
)

__all__ = ["SignedRequestGuard"]

_COMPONENTS: Final = " ".join(f'"{c}"' for c in (*REQUIRED_COMPONENTS, "content-digest"))


class SignedRequestGuard:
    """Admits only requests signed by the caller's key, within the window, once."""

    def __init__(
        self, signatures: RequestSignatures, policy: ReplayPolicy, names: GatewayNames
    ) -> None:
        """Check against ``policy`` (window, nonce) with ``signatures``.

        ``@target-uri`` is the request's URL under ``names``' public URL.
        """
        self._signatures = signatures
        self._names = names
        self._window = policy.window
        self._nonce_required = policy.nonce == "required"
        nonce = ";nonce" if self._nonce_required else ""
        # RFC 9421 §5.1: what a signature on this route must cover, and its parameters.
        self._accept = f"sig1=({_COMPONENTS});created{nonce};keyid"

    async def __call__(self, ctx: RequestContext) -> None:
        """Verify the signature (off the event loop: key lookup and nonce store do I/O)."""
        request = ctx.request
        principal = ctx.principal
        if principal is None:  # pragma: no cover - authentication runs first
            raise Refusal("unauthorized", "this route requires a credential")
        body = await ctx.read_body()  # within the route's limit; kept for the upstream
        # RFC 9421 §2.2.2: the target URI the client was given (the public URL), never one
        # built from the caller's Host header (a signature for another server would pass).
        message = SignedMessage(request.method, self._names.target(request), request.headers)
        try:
            await asyncio.to_thread(
                self._signatures.verify,
                message,
                body,
                client=principal.client,
                window=self._window,
                nonce_required=self._nonce_required,
            )
        except SignatureRefused as exc:
            if exc.code != "invalid-signature":
                raise
            # RFC 9421 §5: tell the caller what a signature on this route must cover.
            raise Refusal(
                exc.code,
                exc.detail,
                headers={"Accept-Signature": self._accept},
                log_reason=exc.log_reason,
            ) from None
