"""Structured logging with credential redaction.

``configure_logging`` sets up structlog (JSON when not on a terminal) and routes
the standard library's logging through the same pipeline, so a password in a
third-party library's log line is masked as well as one in our own events.
"""

from interlock.logs.configure import configure_logging, get_logger
from interlock.logs.redaction import REDACTED, redact_credentials, redact_event, redact_text

__all__ = [
    "REDACTED",
    "configure_logging",
    "get_logger",
    "redact_credentials",
    "redact_event",
    "redact_text",
]
