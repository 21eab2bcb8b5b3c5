"""Wycheproof's JOSE vectors along the token path: the key set parsed, then verified by kid.

``parse_jwks`` is how every trusted issuer's key set is read and
``verify_compact`` how a token meets it, so the JWS and JWK vectors run
through both, not only through the signature primitive.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from interlock.crypto.jose import (
    ALLOWED_ALGORITHMS,
    PublicKey,
    generate_signing_key,
    public_jwk,
    unverified_header,
    verify_compact,
)
from interlock.errors import InvalidTokenError
from interlock.oauth.keysets import parse_jwks
from tests.crypto.vectors import WYCHEPROOF, nonempty, vector_file

# Wycheproof cases whose refusal needs a check no library offers us (named, not hidden).
KNOWN_GAPS = {
    # ROCA (CVE-2017-15361) fingerprinting of RSA moduli: neither cryptography nor joserfc has it.
    "json_web_key_test.json:7": "ROCA-vulnerable RSA modulus",
}


def _cases() -> list[tuple[str, dict[str, Any], str, str]]:
    """(id, JWKS document, compact JWS, expected result) of the two Wycheproof JOSE files."""
    cases = []
    for name in ("json_web_signature_test.json", "json_web_key_test.json"):
        path = vector_file(WYCHEPROOF / name)
        for group in json.loads(path.read_text())["testGroups"]:
            public = group.get("public")
            document = (
                public if public and "keys" in public else {"keys": [public] if public else []}
            )
            for case in group["tests"]:
                token = case["jws"] if isinstance(case["jws"], str) else json.dumps(case["jws"])
                cases.append((f"{name}:{case['tcId']}", document, token, case["result"]))
    return list(nonempty(cases, "Wycheproof JOSE vectors"))


def _keys(document: dict[str, Any]) -> dict[str, PublicKey]:
    try:
        parsed = parse_jwks(json.dumps(document).encode())
    except ValueError:
        return {}  # a refused key set verifies nothing
    return {kid: key for kid, (_, key) in parsed.items()}


def _alg(token: str) -> object:
    try:
        return unverified_header(token).get("alg")
    except InvalidTokenError:
        return None


def test_every_invalid_vector_is_refused_and_every_allowed_valid_one_verifies() -> None:
    """``invalid``: refused. ``valid``: verifies when its algorithm is on our allow-list.

    HMAC, RS384/512, PS384/512 and ES512 are refused by policy (RFC 8725 §3.1).
    """
    checked = 0
    for case_id, document, token, result in _cases():
        if case_id in KNOWN_GAPS:
            continue
        try:
            verify_compact(token, _keys(document), ALLOWED_ALGORITHMS)
            accepted = True
        except InvalidTokenError:
            accepted = False
        if result == "invalid":
            assert not accepted, f"{case_id} must be refused"
        elif result == "valid" and _alg(token) in ALLOWED_ALGORITHMS:
            assert accepted, f"{case_id} should verify"
        checked += 1
    assert checked > 400


def test_a_key_set_with_a_duplicate_kid_is_refused() -> None:
    """Wycheproof DuplicateKid: two keys under one kid make the set unusable, not last-wins."""
    entries = [
        {**public_jwk(generate_signing_key("ES256"), "ES256"), "kid": "same"} for _ in range(2)
    ]
    with pytest.raises(ValueError, match="kid"):
        parse_jwks(json.dumps({"keys": entries}).encode())
