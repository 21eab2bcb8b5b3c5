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

from interlock.credentials.names import secret_field
from interlock.logs import REDACTED, configure_logging, redact_text
from interlock.logs.redaction import is_sensitive_key, redact_event
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


# Field names the scanner reports a secret under (tests/scan), spelled as configs and code do.
SCANNED_NAMES = (
    "signing_key",
    "master_key",
    "encryption_key",
    "secret_key",
    "access_key",
    "privateKey",
    "apiKey",
    "X-Api-Key",
    "db_password",
    "PGPASSWORD",
    "client_secret",
    "shared_secret_base64",
    "auth_token",
    "accessToken",
    "bearer_token",
    "credentials",
)


@pytest.mark.parametrize("name", SCANNED_NAMES)
def test_every_name_the_scanner_reads_as_a_secret_is_masked_in_log_text(name: str) -> None:
    """``name=value``, ``name: value`` and ``"name": "value"`` are masked for each such name.

    The scanner and redaction read one rule (interlock.credentials.names): before,
    ``interlock scan`` reported ``signing_key: …`` and ``master_key: …`` while
    redact_text left them in clear.
    """
    value = rand(28)
    assert secret_field(name) is not None
    for text in (f"{name}={value}", f"loaded {name}: {value} from env", f'{{"{name}": "{value}"}}'):
        masked = redact_text(text)
        assert value not in masked, text
        assert REDACTED in masked
    assert is_sensitive_key(name)


def test_signing_and_master_keys_in_a_log_line_are_masked(json_logs: io.StringIO) -> None:
    """The audit's example: a library logging ``signing_key=`` and ``master_key:``."""
    value = rand(32)
    logging.getLogger("somelib.crypto").warning("signing_key=%s master_key: %s", value, value)
    output = json_logs.getvalue()
    assert value not in output
    (line,) = [json.loads(raw) for raw in output.splitlines()]
    assert line["event"] == f"signing_key={REDACTED} master_key: {REDACTED}"


@pytest.mark.parametrize(
    "text",
    [
        "password_file=/run/secrets/db token_url=https://idp.example/token",
        "secret_ref=erp/api-key max_tokens=512 page_token=c2Vjb25k",
        "auth=secret://erp/hook token=secret://erp/api-key",
        "publicToken=pk.eyJ1IjoibWFwYm94In0",
    ],
)
def test_names_that_hold_no_secret_stay_readable(text: str) -> None:
    """References, cursors, counts and public tokens are no secret in a log either."""
    assert redact_text(text) == text


def test_a_pair_inside_another_value_is_still_masked() -> None:
    """``url=…?token=…``: the URL's value does not hide the pair inside it."""
    value = rand(24)
    masked = redact_text(f"calling url=https://erp.example/api?token={value}&page=2 now")
    assert masked == f"calling url=https://erp.example/api?token={REDACTED}&page=2 now"


def test_the_access_log_keeps_the_id_of_the_credential_used() -> None:
    """``credential`` in Interlock's access and decision lines is the key's id, not its secret."""
    used = "api-key ab12cd34ef56"  # in a file, a literal under "credential" is a finding
    event = {"event": "request", "credential": used, "signing_key": rand(32)}
    redacted = redact_event(None, "info", event)
    assert redacted["credential"] == used
    assert redacted["signing_key"] == REDACTED
