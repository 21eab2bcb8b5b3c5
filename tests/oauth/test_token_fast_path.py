"""The token endpoint answers on the event loop only when nothing needs I/O."""

from __future__ import annotations

import base64

from tests.oauth.conftest import OAuthKit

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


def test_failures_and_other_methods_take_the_full_path(
    kit: OAuthKit,
) -> None:
    """A wrong secret, an assertion, garbage: None, so the full path answers and counts."""
    token_endpoint, secrets = kit.endpoint(), kit.secrets
    _, secret = secrets.create("order-sync")
    token_endpoint.handle([_basic(secret)], FORM)
    wrong = _basic(secret[:-12] + "A" * 12)
    assert token_endpoint.handle_now([wrong], FORM) is None
    assert token_endpoint.handle_now(["Basic %%%"], FORM) is None
    assertion = {**FORM, "client_assertion_type": ["x"], "client_assertion": ["y"]}
    assert token_endpoint.handle_now([], assertion) is None
    assert token_endpoint.handle_now([], FORM) is None
