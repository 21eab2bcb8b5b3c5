"""Structured logging with credential redaction.

``configure_logging`` sets up structlog (JSON when not on a terminal) and routes
the standard library's logging through the same pipeline, so a password in a
third-party library's log line is masked as well as one in our own events.

``configure_logging`` and ``get_logger`` are loaded on first use (PEP 562): the
redaction functions are needed by every ``interlock`` command line, structlog
and the settings (~0.4 s of imports) only by those that log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from interlock.logs.redaction import REDACTED, redact_credentials, redact_event, redact_text

if TYPE_CHECKING:
    from interlock.logs.configure import configure_logging, get_logger

__all__ = [
    "REDACTED",
    "configure_logging",
    "get_logger",
    "redact_credentials",
    "redact_event",
    "redact_text",
]


def __getattr__(name: str) -> Any:
    if name in {"configure_logging", "get_logger"}:
        from interlock.logs import configure

        return getattr(configure, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
