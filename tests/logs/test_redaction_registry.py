"""Every registered credential format is masked in a third-party log line, a traceback and an error.

The formats come from the one registry (:mod:`interlock.credentials`), so a
provider added there is covered here without touching this file; its sample
lives in ``tests/credentials/samples.py``.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from interlock.logs import REDACTED, configure_logging, redact_text
from tests.credentials.samples import SAMPLES, URLSAFE, rand


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The project's logging set up as JSON into a buffer; defaults restored afterwards."""
    buffer = io.StringIO()
    configure_logging("debug", "json", buffer)
    yield buffer
    logging.getLogger().handlers.clear()
    structlog.reset_defaults()


class _UpstreamError(Exception):
    """What a client library raises with the request it failed on in its message."""


def _library_call(text: str) -> None:
    raise _UpstreamError(f"request failed: {text}")


@pytest.mark.parametrize("format_id", sorted(SAMPLES))
def test_every_format_is_masked_in_a_third_party_log_line(
    format_id: str, json_logs: io.StringIO
) -> None:
    """A library logging through stdlib ``logging`` (args formatted late) leaks no credential."""
    text, secret = SAMPLES[format_id]()
    logging.getLogger("somelib.http").warning("sending %s to upstream", text)
    output = json_logs.getvalue()
    assert secret not in output
    (line,) = [json.loads(raw) for raw in output.splitlines()]
    assert line["logger"] == "somelib.http"
    assert REDACTED in line["event"]


@pytest.mark.parametrize("format_id", sorted(SAMPLES))
def test_every_format_is_masked_in_a_logged_traceback(
    format_id: str, json_logs: io.StringIO
) -> None:
    """The credential in an exception raised inside a library is masked in the rendered traceback."""
    text, secret = SAMPLES[format_id]()
    try:
        _library_call(text)
    except _UpstreamError:
        logging.getLogger("somelib.http").exception("upstream call failed")
    output = json_logs.getvalue()
    assert secret not in output
    (line,) = [json.loads(raw) for raw in output.splitlines()]
    assert "_UpstreamError" in line["exception"]
    assert REDACTED in line["exception"]


@pytest.mark.parametrize("format_id", sorted(SAMPLES))
def test_every_format_is_masked_in_an_exception_message(format_id: str) -> None:
    """``str(exc)`` of a library error, as shown to an operator, is masked by redact_text."""
    text, secret = SAMPLES[format_id]()
    try:
        _library_call(text)
    except _UpstreamError as error:
        message = redact_text(str(error))
    assert secret not in message
    assert message.startswith("request failed: ")
    assert REDACTED in message


def test_a_bearer_token_that_starts_like_a_word_is_masked() -> None:
    """``Bearer Abc-…``: a token whose first run of letters is a word is still a token.

    The old shape skipped any value that *began* with a plain word up to a word
    boundary, so a token such as ``Ghk-7f…`` (about one random URL-safe token in
    30) went to the log in clear.
    """
    token = "Ghk-" + rand(36, URLSAFE)
    masked = redact_text(f"retrying with Authorization: Bearer {token}")
    assert token not in masked
    assert masked == f"retrying with Authorization: Bearer {REDACTED}"
    assert redact_text("Bearer tokens are refused") == "Bearer tokens are refused"
