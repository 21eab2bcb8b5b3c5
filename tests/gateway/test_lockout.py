"""Nobody can lock a client out of the token endpoint by knowing its id (issue 17 item 6).

The attacker sends wrong secrets for ``oauth-only`` from 127.0.0.2 (another
loopback address) until the token endpoint slows *it* down; the client,
calling from 127.0.0.1 with its right secret, still gets its token.
"""

from __future__ import annotations

import base64
import sys
from typing import Any
from urllib.parse import urlencode

import pytest

from interlock.limits import CLIENT_FAILURES
from interlock.testing.gateway import Env

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BODY = urlencode({"grant_type": "client_credentials"}).encode()


def _token_request(env: Env, headers: dict[str, str], source: str) -> tuple[int, Any]:
    status, _, body = env.request("POST", "/oauth2/token", {**FORM, **headers}, BODY, source=source)
    return status, body


@pytest.mark.skipif(sys.platform != "linux", reason="127.0.0.2 is a loopback address on Linux")
def test_wrong_secrets_from_elsewhere_do_not_lock_the_client_out(env: Env, secret: str) -> None:
    """Three times the per-client budget of wrong secrets; the right one still gets a token."""
    wrong = "Basic " + base64.b64encode(b"oauth-only:" + b"A" * 40).decode()
    answers = [
        _token_request(env, {"Authorization": wrong}, "127.0.0.2")[0]
        for _ in range(CLIENT_FAILURES.limit * 3)
    ]
    assert answers[0] == 401
    assert answers[-1] == 429  # the guesser is slowed down
    status, body = _token_request(env, Env.basic(secret), "127.0.0.1")
    assert status == 200, body
    env.issued_tokens.append(str(body["access_token"]))
