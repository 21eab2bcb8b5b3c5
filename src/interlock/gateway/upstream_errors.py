"""An upstream's server error (5xx) never reaches the caller as the upstream wrote it.

Error pages are where systems spill their insides: stack traces, SQL, file
paths, configuration with ``password=...`` (CWE-209). Whatever the route,
the caller gets ``502 Bad Gateway`` as a problem document of type
``upstream-error`` carrying the correlation id; the upstream's status and
body go to the log only, redacted and cut to :data:`LOGGED_BODY_CHARS`.

502 rather than the upstream's own status: the gateway answers for the
exchange, and RFC 9110 §15.6.3 names 502 for an invalid answer from an
upstream; an upstream's 503 or 504 would tell the caller about a system
behind the gateway that it never addresses directly.
"""

from __future__ import annotations

from typing import Final

from multidict import CIMultiDictProxy

from interlock.errors import Refusal
from interlock.logs import get_logger
from interlock.logs.redaction import redact_text

__all__ = ["LOGGED_BODY_CHARS", "UpstreamServerError", "withheld_server_error"]

LOGGED_BODY_CHARS: Final = 2000
"""How much of an upstream error body is logged (after redaction)."""

_log = get_logger("interlock.gateway.upstream")
# Characters no credential format contains: whitespace and the punctuation around values.
_SEPARATORS: Final = " \t\r\n,;&\"'<>(){}[]"


class UpstreamServerError(Refusal):
    """The upstream answered 5xx: the request *was* forwarded, its answer is withheld.

    A refusal for the caller, but on the audit trail a forwarded request whose
    outcome is a failure: the data reached the target.
    """


def withheld_server_error(
    system: str,
    status: int,
    headers: CIMultiDictProxy[str],
    body: bytes,
    correlation_id: str,
) -> UpstreamServerError:
    """Log the upstream's answer (redacted, bounded) and build the refusal that replaces it."""
    _log.warning(
        "upstream server error withheld from the caller",
        system=system,
        upstream_status=status,
        correlation_id=correlation_id,
        upstream_body=_loggable(headers, body),
        upstream_body_bytes=len(body),
    )
    return UpstreamServerError(
        "upstream-error",
        f"the upstream system '{system}' answered with an error; "
        "quote the correlation id to the operator",
        log_reason=f"upstream answered {status}; its body was withheld",
    )


def _loggable(headers: CIMultiDictProxy[str], body: bytes) -> str:
    encoding = headers.get("Content-Encoding", "identity").strip().lower()
    if encoding != "identity":
        return f"({encoding}-encoded body not logged)"
    # Redact a window wider than what is kept, cut back to a separator, so a credential
    # is never split at the edge into a piece the patterns no longer recognise (no
    # separator at all: the window is one token, and none of it is logged).
    window = body[: 2 * LOGGED_BODY_CHARS].decode("utf-8", "replace")
    if len(body) > 2 * LOGGED_BODY_CHARS:
        cut = max(window.rfind(separator) for separator in _SEPARATORS)
        window = window[:cut] if cut > 0 else ""
    text = redact_text(window)
    if len(text) > LOGGED_BODY_CHARS:
        return text[:LOGGED_BODY_CHARS] + "..."
    return text
