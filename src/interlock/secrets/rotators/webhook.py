"""Rotate a credential held by any system with an HTTPS endpoint that takes it.

Settings: ``url`` (``https://`` only), optionally ``ca`` (a CA bundle file to
trust instead of the system's; verification is always on, there is no switch
to turn it off), ``auth`` (a ``secret://`` reference whose value is sent as
the ``Authorization`` header) and ``length`` (bytes of randomness in a new
value, default 32).

Each of *set*, *test* and *retire* is one ``POST`` of JSON::

    {"name": "erp/api-key", "version": 7, "step": "set", "value": "..."}

where ``value`` is the pending value (for *retire*, the old one, so the
endpoint can drop it). The endpoint answers 2xx when done; it must accept a
repeated call (a resumed rotation repeats the step it was interrupted in).
The client is :func:`interlock.outbound.outbound_client`'s: TLS 1.2 or
later, verified; 10 s timeouts; redirects are not followed; the answer's
body is never read.
"""

from __future__ import annotations

import json
import secrets
import ssl
from collections.abc import Mapping
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import httpx

from interlock.errors import InvalidRequestError
from interlock.outbound import Timeouts, outbound_client, tls_context
from interlock.secret import Secret
from interlock.secrets.rotators.base import Credential, RotationError, RotatorContext, option

__all__ = ["WebhookRotator", "build"]

_TIMEOUTS: Final = Timeouts.every(10.0)
_MIN_BYTES: Final = 16
_MAX_BYTES: Final = 512


class WebhookRotator:
    """Posts each step with its value to the configured HTTPS endpoint."""

    def __init__(
        self,
        url: str,
        context: ssl.SSLContext,
        auth: Secret | None,
        length: int = 32,
    ) -> None:
        """Post to ``url``, trusting ``context``; ``auth`` is the Authorization header value."""
        self._url = url
        self._context = context
        self._auth = auth
        self._length = length

    def generate(self, current: Credential) -> bytes:
        """A fresh random value (URL-safe text)."""
        return secrets.token_urlsafe(self._length).encode()

    def set(self, pending: Credential, current: Credential) -> None:
        """Tell the endpoint to accept the pending value too."""
        self._post("set", pending)

    def test(self, pending: Credential) -> None:
        """Ask the endpoint to check the pending value."""
        self._post("test", pending)

    def retire(self, old: Credential, current: Credential) -> None:
        """Tell the endpoint to stop accepting the old value."""
        self._post("retire", old)

    def _post(self, step: Literal["set", "test", "retire"], credential: Credential) -> None:
        body = json.dumps(
            {
                "name": credential.name,
                "version": credential.version,
                "step": step,
                "value": credential.value.reveal().decode("utf-8"),
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self._auth is not None:
            headers["Authorization"] = self._auth.reveal().decode("latin-1")
        try:
            with (
                outbound_client(trust=self._context, timeouts=_TIMEOUTS) as client,
                # Streamed and left unread: only the status counts, the body never matters.
                client.stream("POST", self._url, content=body, headers=headers) as answer,
            ):
                status = answer.status_code
        except httpx.HTTPError as error:
            raise RotationError(
                f"the rotation endpoint of {credential.name} could not be reached for {step} "
                f"({type(error).__name__})"
            ) from None
        if not 200 <= status < 300:
            raise RotationError(
                f"the rotation endpoint of {credential.name} answered {status} to {step}"
            )


def build(config: Mapping[str, Any], context: RotatorContext) -> WebhookRotator:
    """The rotator for ``-o url=https://... [-o ca=FILE] [-o auth=secret://...]``."""
    url = option(config, "url")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise InvalidRequestError("the webhook rotator posts to an https:// URL only")
    if parts.username or parts.password:
        raise InvalidRequestError(
            "put the endpoint's credentials in -o auth=secret://..., not the URL"
        )
    ca = config.get("ca")
    tls = tls_context(str(ca) if ca else None)
    auth = context.secret(str(config["auth"])) if config.get("auth") else None
    length = int(config.get("length") or 32)
    if not _MIN_BYTES <= length <= _MAX_BYTES:
        raise InvalidRequestError(f"length is {_MIN_BYTES} to {_MAX_BYTES} bytes")
    return WebhookRotator(url, tls, auth, length)
