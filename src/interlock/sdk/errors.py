"""The SDK's errors, under the one root :class:`interlock.errors.InterlockError`.

Messages never carry a client secret, a private key or an access token: they
may end up in a log or a traceback on a developer's screen.
"""

from __future__ import annotations

from typing import Final

from interlock.errors import InterlockError
from interlock.outbound import InsecureTransportError  # one class: the factory refuses http://

__all__ = ["InsecureTransportError", "TokenRequestError"]

_MAX_DESCRIPTION: Final = 200


class TokenRequestError(InterlockError):
    """The token endpoint refused a token request, or could not be asked.

    ``error`` is the RFC 6749 §5.2 code the server sent (``invalid_client``,
    ``invalid_scope``, ``invalid_dpop_proof`` ...), or, when there was no usable
    answer, ``network_error`` or ``invalid_response``. ``status`` is the HTTP
    status, if any.
    """

    code = "token_request_failed"

    def __init__(self, error: str, status: int | None = None, description: str = "") -> None:
        """Describe the failure; ``description`` (the server's text) is shortened and cleaned."""
        self.error = error
        self.status = status
        self.description = _printable(description)[:_MAX_DESCRIPTION]
        where = f" (HTTP {status})" if status is not None else ""
        detail = f": {self.description}" if self.description else ""
        super().__init__(f"token request failed{where}: {error}{detail}")


def _printable(text: str) -> str:
    # Server text goes into messages and logs: no control characters (log injection).
    return "".join(ch if ch.isprintable() else " " for ch in text)
