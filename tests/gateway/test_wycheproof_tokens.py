"""Wycheproof's JWS and JWK vectors through the running gateway's token paths.

Every compact JWS of the two Wycheproof JOSE files (427 tokens: wrong
algorithms, key confusion, truncated and malleated signatures, odd headers) is
presented where the gateway reads a JWT from an outsider: as a bearer access
token at a route and as a ``private_key_jwt`` client assertion at the token
endpoint. None is signed by a key the gateway trusts, so each must end in the
same clean refusal — a 401 problem with an RFC 6750 challenge at the route,
``invalid_client`` (RFC 6749) at the token endpoint — and never a 500 (item 8
of issue 17 found several shapes that were).

Whether each vector's signature verifies or not is checked where the
gateway's verifiers do it (``tests/oauth/test_jose_vectors.py`` through the key
set parser and ``verify_compact``; the ECDSA and Ed25519 files through
``verify_signature`` in ``tests/crypto/test_jose.py``).
"""

from __future__ import annotations

import json
from collections import Counter
from urllib.parse import urlencode

from interlock.oauth.client_assertion import ASSERTION_TYPE
from interlock.testing.gateway import Env
from tests.crypto.vectors import WYCHEPROOF, nonempty, vector_file

FILES = ("json_web_signature_test.json", "json_web_key_test.json")
SOURCE = "127.0.0.91"  # failures count per address: these spend an address of their own


def _tokens() -> list[tuple[str, str]]:
    tokens = []
    for name in FILES:
        path = vector_file(WYCHEPROOF / name)
        for group in json.loads(path.read_text())["testGroups"]:
            tokens += [(f"{name}:{case['tcId']}", case["jws"]) for case in group["tests"]]
    return list(nonempty(tokens, "Wycheproof JOSE tokens"))


def test_every_vector_as_a_bearer_token_is_a_clean_401(env: Env) -> None:
    """A route answers each with a 401 problem and a Bearer challenge; nothing else."""
    answers: Counter[tuple[int, str]] = Counter()
    for case, token in _tokens():
        status, headers, body = env.request(
            "GET", "/orders/1001", {"Authorization": f"Bearer {token}"}, source=SOURCE
        )
        assert status == 401, (case, status, body)
        assert headers["content-type"].startswith("application/problem+json"), case
        assert headers["www-authenticate"].startswith('Bearer realm="interlock"'), case
        answers[(status, body["type"])] += 1
    assert sum(answers.values()) > 400
    assert len(answers) == 1


def test_every_vector_as_a_client_assertion_is_invalid_client(env: Env) -> None:
    """The token endpoint answers each with RFC 6749 ``invalid_client`` (the empty string, no
    assertion at all, with ``invalid_request``); nothing else."""
    for case, token in _tokens():
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": token,
        }
        status, _, body = env.request(
            "POST",
            "/oauth2/token",
            {"Content-Type": "application/x-www-form-urlencoded"},
            urlencode(form).encode(),
            source=SOURCE,
        )
        expected = (400, "invalid_request") if token == "" else (401, "invalid_client")
        assert (status, body.get("error")) == expected, (case, body)
