"""The token endpoint answers on the event loop only when nothing needs I/O."""

from __future__ import annotations

import base64

from tests.oauth.conftest import OAuthKit, answer

FORM = {"grant_type": ["client_credentials"]}


def _basic(secret: str) -> str:
    return "Basic " + base64.b64encode(f"order-sync:{secret}".encode()).decode()


def test_first_request_needs_the_store_then_answers_in_memory(
    kit: OAuthKit,
) -> None:
    """Cold: None (go to a thread). After one full answer: a token, without I/O."""
    token_endpoint, secrets = kit.endpoint(), kit.secrets
    _, secret = secrets.create("order-sync")
    assert token_endpoint.handle_now([_basic(secret)], FORM) is None
    assert token_endpoint.handle([_basic(secret)], FORM).status == 200
    fast = token_endpoint.handle_now([_basic(secret)], FORM)
    assert fast is not None
    assert fast.status == 200
    assert "access_token" in fast.body
    post = {**FORM, "client_id": ["order-sync"], "client_secret": [secret]}
    answer = token_endpoint.handle_now([], post)
    assert answer is not None
    assert answer.status == 200


def test_what_needs_the_store_takes_the_full_path(kit: OAuthKit) -> None:
    """An uncached secret or an assertion: None (a worker thread answers); garbage: 401 at once."""
    token_endpoint, secrets = kit.endpoint(), kit.secrets
    _, secret = secrets.create("order-sync")
    _, other = secrets.create("order-sync")
    token_endpoint.handle([_basic(secret)], FORM)
    assert token_endpoint.handle_now([_basic(other)], FORM) is None  # its row is not in memory
    assertion = {**FORM, "client_assertion_type": ["x"], "client_assertion": ["y"]}
    assert token_endpoint.handle_now([], assertion) is None
    malformed = answer(lambda: token_endpoint.handle_now(["Basic %%%"], FORM))
    assert (malformed.status, malformed.body["error"]) == (401, "invalid_client")
    missing = answer(lambda: token_endpoint.handle_now([], FORM))
    assert missing.status == 401


def test_a_fast_path_miss_leaves_the_full_path_reading_the_store(kit: OAuthKit) -> None:
    """After a fast-path miss, the full path still reads the store."""
    token_endpoint, secrets = kit.endpoint(), kit.secrets
    _, secret = secrets.create("order-sync")
    assert token_endpoint.handle_now([_basic(secret)], FORM) is None
    assert token_endpoint.handle([_basic(secret)], FORM).status == 200
