"""Redaction: credentials are masked by field name and by shape, everywhere."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from interlock.logs import REDACTED, configure_logging, get_logger, redact_text
from interlock.logs.redaction import is_sensitive_key, redact_credentials, redact_value

JWT = (
    "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9"
    ".eyJzdWIiOiJvcmRlci1zeW5jIiwic2NvcGUiOiJvcmRlcnMucmVhZCJ9"
    ".MEUCIQDx3b3Q1Zs5dWf2oWmS0a8lQ6mJ4mM0x2Ck1_uQ0kK9yQ"
)
API_KEY = "ilk_7Hq2Lm9x_Zr4Tt8Vw1Yy6Bb3Nn5Cc0Dd2Ee4Ff_3kP9"
PEM = (
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oqLrTSlXDzOSoAoGCCqGSM49\n"
    "-----END EC PRIVATE KEY-----"
)


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Configure logging as JSON into a buffer; restore defaults afterwards."""
    buffer = io.StringIO()
    configure_logging("debug", "json", buffer)
    yield buffer
    logging.getLogger().handlers.clear()
    structlog.reset_defaults()


def _lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"Authorization: Bearer {JWT}", JWT),
        ("Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),
        (f"token {JWT} refused", JWT),
        (f"X-API-Key: {API_KEY}", API_KEY),
        (
            f"key material {PEM} end",
            "MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oqLrTSlXDzOSoAoGCCqGSM49",
        ),
        ("connect postgresql://app:s3cr3t-pw@db:5432/x", "s3cr3t-pw"),
        ("password=hunter2&user=bob", "hunter2"),
        ('{"client_secret": "abc def ghi"}', "abc def ghi"),
        ("csrf_token: t0k3nv4lu3", "t0k3nv4lu3"),
        ("gh token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghijklmnop"),
        ("aws AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE"),
    ],
)
def test_credential_shapes_are_masked_in_free_text(text: str, secret: str) -> None:
    """Each credential format is replaced by the marker wherever it appears in a string."""
    masked = redact_text(text)
    assert secret not in masked
    assert REDACTED in masked


def test_truncated_pem_private_key_is_masked_to_the_end() -> None:
    """A private key whose END line was cut off is still masked."""
    masked = redact_text("oops " + PEM.splitlines()[0] + "\nMHcCAQEEIBkg4LVWM9nuw")
    assert "MHcCAQEEIBkg4LVWM9nuw" not in masked


@pytest.mark.parametrize(
    "text",
    [
        "Basic authentication failed for client order-sync",
        "request GET /orders/42 completed in 12 ms",
        "key id k_7f3a rotated",
        "tokens issued: 12",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    """Redaction does not mangle messages that carry no credential."""
    assert redact_text(text) == text


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "proxy-authorization",
        "Cookie",
        "Set-Cookie",
        "X-API-Key",
        "password",
        "db_password",
        "client_secret",
        "refresh_token",
        "private_key",
    ],
)
def test_sensitive_field_names_are_recognised(name: str) -> None:
    """Header and field names that carry credentials are matched case- and dash-insensitively."""
    assert is_sensitive_key(name)


def test_nested_structures_are_redacted_recursively() -> None:
    """Values under sensitive keys go, at any depth, in dicts and lists alike."""
    value = {
        "request": {
            "headers": [{"cookie": "sid=abc"}, {"Authorization": "x"}],
            "note": f"used {API_KEY}",
        }
    }
    assert redact_value(value) == {
        "request": {
            "headers": [{"cookie": REDACTED}, {"Authorization": REDACTED}],
            "note": f"used {REDACTED}",
        }
    }


def test_structlog_events_are_redacted_in_json_output(json_logs: io.StringIO) -> None:
    """Our own events: field names and shapes are both masked in the rendered JSON."""
    get_logger("test").info(
        "call upstream",
        headers={"Authorization": f"Bearer {JWT}", "Accept": "application/json"},
        password="hunter2",
        url="https://svc:pw123456@crm.example.com/x",
    )
    output = json_logs.getvalue()
    for secret in (JWT, "hunter2", "pw123456"):
        assert secret not in output
    (line,) = _lines(json_logs)
    assert line["event"] == "call upstream"
    assert line["headers"] == {"Authorization": REDACTED, "Accept": "application/json"}
    assert line["level"] == "info"


def test_standard_library_logs_are_redacted_too(json_logs: io.StringIO) -> None:
    """A third-party library logging through `logging` cannot leak a credential either."""
    logging.getLogger("some.library").warning("retrying with Authorization: Bearer %s", JWT)
    (line,) = _lines(json_logs)
    assert JWT not in json_logs.getvalue()
    assert line["logger"] == "some.library"


def test_tracebacks_are_redacted(json_logs: io.StringIO) -> None:
    """An exception message carrying a key is masked in the rendered traceback."""
    try:
        _fail_with(f"bad key {API_KEY}")
    except ValueError:
        get_logger("test").exception("failed")
    (line,) = _lines(json_logs)
    assert API_KEY not in json_logs.getvalue()
    assert "ValueError" in str(line["exception"])


def _fail_with(message: str) -> None:
    raise ValueError(message)


@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=20)
)
def test_any_interlock_key_suffix_is_masked(suffix: str) -> None:
    """Whatever follows the ilk_ prefix, the key never survives redaction."""
    assert suffix not in redact_text(f"key=ilk_{suffix} ok")


def test_client_secrets_are_masked_like_api_keys() -> None:
    """ilcs_ client secrets are credentials wherever they appear, in both nets."""
    from interlock.identity.client_secrets import new_client_secret

    secret = new_client_secret()[0]
    assert secret.startswith("ilcs_")
    for redact in (redact_text, redact_credentials):
        masked = redact(f"client app authenticated with {secret}")
        assert secret not in masked
        assert masked.endswith(REDACTED)


def test_credential_formats_alone_leave_name_value_text_as_written() -> None:
    """redact_credentials (the audit trail's net) masks formats only, not name=value guesses."""
    text = "configure -o auth=secret://erp/hook -o password_file=/run/pw"
    assert redact_credentials(text) == text
    assert redact_credentials(f"{text} {JWT}") == f"{text} {REDACTED}"


@pytest.mark.parametrize(
    "text",
    [
        "secret://crm/oauth-client",
        "password: secret://erp/db-password",
        "client_secret=secret://crm/oauth-client",
    ],
)
def test_a_vault_reference_stays_readable(text: str) -> None:
    """A secret:// reference names a secret and is none: the operator's log keeps it.

    Before, "secret://crm/oauth-client" became "secret:[REDACTED]" (the pair
    net read "secret:" as a name and "//crm/..." as its value), so serve's
    missing-secret lines did not say which secret was missing.
    """
    assert redact_text(text) == text


def test_a_value_after_a_reference_like_name_is_still_masked() -> None:
    """Only the reference form escapes the pair net, not a value that merely follows it."""
    assert redact_text("secret: hunter2hunter2") == f"secret: {REDACTED}"
    assert redact_text("password=//hunter2") == f"password={REDACTED}"
    assert redact_text('password="secret://a" token=abc') == f"password={REDACTED} token={REDACTED}"
