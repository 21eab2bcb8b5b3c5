"""The JOSE layer's per-call shortcuts answer exactly as the code they stand in for.

Verification decodes base64url and parses the payload without joserfc's and
``json.loads``' detours, and checks a key against an algorithm once per key:
the answers (accepted value or refusal) must not change.
"""

from __future__ import annotations

import binascii
import contextlib
import json
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from joserfc.util import urlsafe_b64decode

from interlock.crypto.jose import (
    PublicKey,
    _b64url_decode,
    _header,
    import_public_jwk,
    json_object,
    public_jwk,
    sign_compact,
    split_unverified,
    verify_chosen,
    verify_signature,
    verify_split,
)
from interlock.errors import InvalidTokenError

_TEXT = st.text(alphabet=string.ascii_letters + string.digits + "-_+/=!. \né", max_size=16)


def _b64(data: bytes) -> str:
    """Base64url without padding (valid input, to meet the accepting side too)."""
    return (
        binascii.b2a_base64(data, newline=False).decode().translate(str.maketrans("+/", "-_", "="))
    )


def _answer(decode: Any, text: str) -> object:
    try:
        return decode(text)
    except (binascii.Error, UnicodeEncodeError) as exc:
        return type(exc)


@given(st.one_of(_TEXT, st.binary(max_size=12).map(_b64)))
def test_base64url_decoding_agrees_with_joserfc(text: str) -> None:
    """Same bytes or same refusal: padding, "+", "/", non-canonical last characters."""
    expected = _answer(lambda t: urlsafe_b64decode(t.encode("ascii")), text)
    assert _answer(_b64url_decode, text) == expected


@pytest.mark.parametrize("text", ["QQ", "QR", "QUI", "QUJ", "Q", "QUJD=", "QUJ+", "QU/D", ""])
def test_base64url_edge_cases(text: str) -> None:
    """Non-canonical endings (QR, QUJ), a lone character, padding and the standard alphabet."""
    expected = _answer(lambda t: urlsafe_b64decode(t.encode("ascii")), text)
    assert _answer(_b64url_decode, text) == expected


def _parsed(data: bytes) -> object:
    try:
        return ("ok", json_object(data))
    except InvalidTokenError:
        return "refused"


def _reference(data: bytes) -> object:
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):
        return "refused"
    return ("ok", parsed) if isinstance(parsed, dict) else "refused"


@given(
    st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=4),
    st.sampled_from(["", " ", "\n", "\ufeff"]),
    st.sampled_from(["", " ", "\t", "x", "{}"]),
    st.sampled_from(["utf-8", "utf-16", "utf-16-le", "utf-32"]),
)
def test_payload_parsing_agrees_with_json_loads(
    document: dict[str, Any], before: str, after: str, encoding: str
) -> None:
    """Whitespace either side, a byte order mark, UTF-16/32, trailing data: as json.loads."""
    data = (before + json.dumps(document) + after).encode(encoding)
    assert _parsed(data) == _reference(data)


@pytest.mark.parametrize("data", [b"[1]", b"1", b'"x"', b"\xff{}", b"{}\x00", b"{" * 3000])
def test_non_objects_and_broken_text_are_refused(data: bytes) -> None:
    """Only a JSON object passes; bytes that are not text or not JSON are refusals."""
    assert _parsed(data) == "refused"


def test_a_key_checked_for_one_algorithm_is_not_waved_through_for_another() -> None:
    """The remembered key check is per (algorithm, key): ES384 with a P-256 key stays refused."""
    key = ECKey.generate_key("P-256", private=True)
    public = import_public_jwk(public_jwk(key, "ES256") | {"alg": "ES256"})
    signature = jws.JWSRegistry.algorithms["ES256"].sign(b"message", key)
    assert verify_signature("ES256", public, b"message", signature)
    assert not verify_signature("ES384", public, b"message", signature)
    assert not verify_signature("Ed25519", public, b"message", signature)
    assert verify_signature("ES256", public, b"message", signature)


def test_a_key_without_verify_in_key_ops_is_refused_every_time() -> None:
    """RFC 7517 §4.3: the refusal is remembered, not turned into an acceptance."""
    key = ECKey.generate_key("P-256", private=True)
    public = import_public_jwk({**key.as_dict(private=False), "key_ops": ["encrypt"]})
    signature = jws.JWSRegistry.algorithms["ES256"].sign(b"message", key)
    for _ in range(2):
        assert not verify_signature("ES256", public, b"message", signature)


@pytest.mark.parametrize(
    "signature",
    [b"", b"\x00" * 64, b"\xff" * 64, b"x" * 63, b"x" * 65, b"x" * 96],
    ids=["empty", "zeros", "ones", "short", "long", "p384-length"],
)
def test_malformed_es256_signatures_are_refusals(signature: bytes) -> None:
    """Zero or oversized r and s, wrong lengths: False, never an exception."""
    key = ECKey.generate_key("P-256", private=True)
    public = import_public_jwk(public_jwk(key, "ES256"))
    assert not verify_signature("ES256", public, b"message", signature)


_EC_KEYS = {
    alg: ECKey.generate_key(curve, private=True)
    for alg, curve in (("ES256", "P-256"), ("ES384", "P-384"))
}


@pytest.mark.parametrize("alg", sorted(_EC_KEYS))
@given(message=st.binary(max_size=64), flip=st.integers(min_value=-1, max_value=200))
def test_ecdsa_check_agrees_with_joserfc(alg: str, message: bytes, flip: int) -> None:
    """The prehashed check answers as joserfc's ESAlgorithm.verify: good, tampered, truncated."""
    key = _EC_KEYS[alg]
    public = import_public_jwk(public_jwk(key, alg))
    signature = bytearray(jws.JWSRegistry.algorithms[alg].sign(message, key))
    if 0 <= flip < 2 * len(signature):
        signature[flip % len(signature)] ^= 1 << (flip % 8)
    elif flip >= 2 * len(signature):
        del signature[-1]
    expected = jws.JWSRegistry.algorithms[alg].verify(message, bytes(signature), public)
    assert verify_signature(alg, public, message, bytes(signature)) is expected
    assert not verify_signature(alg, public, message + b"x", bytes(signature))


@given(message=st.binary(max_size=64))
def test_ecdsa_signatures_verify_under_joserfc(message: bytes) -> None:
    """sign_compact's ES256 (prehashed, key object kept) is R || S that joserfc verifies.

    Run over many messages, some signatures have an R or S with leading zero
    bytes: they must still be 32 bytes each (RFC 7518 §3.4).
    """
    key = _EC_KEYS["ES256"]
    public = import_public_jwk(public_jwk(key, "ES256"))
    token = sign_compact(message, key, "ES256", {"typ": "at+jwt"})
    encoded_header, encoded_payload, encoded_signature = token.split(".")
    signature = urlsafe_b64decode(encoded_signature.encode())
    assert len(signature) == 64
    assert urlsafe_b64decode(encoded_payload.encode()) == message
    signing_input = f"{encoded_header}.{encoded_payload}".encode()
    assert jws.JWSRegistry.algorithms["ES256"].verify(signing_input, signature, public)
    assert not jws.JWSRegistry.algorithms["ES256"].verify(signing_input + b"x", signature, public)


def test_a_key_that_may_not_sign_is_refused_as_joserfc_refuses_it() -> None:
    """key_ops without "sign": the same refusal as joserfc's own signing, not a signature."""
    key = ECKey.import_key(
        {**_EC_KEYS["ES256"].as_dict(private=True), "key_ops": ["verify"]}, {"key_ops": ["verify"]}
    )
    with pytest.raises(JoseError):
        jws.JWSRegistry.algorithms["ES256"].sign(b"m", key)
    with pytest.raises(JoseError):
        sign_compact(b"{}", key, "ES256")


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"alg": "ES256", "crit": ["exp"], "exp": 1}, "critical"),
        ({"alg": "ES384"}, "not allowed"),
        ({"alg": "HS256"}, "not allowed"),
        ({"alg": "none"}, "not allowed"),
    ],
)
def test_a_split_token_meets_the_header_rules(header: dict[str, Any], reason: str) -> None:
    """verify_split applies the allow-list and crit before the signature, as verify_compact."""
    key = ECKey.generate_key("P-256", private=True)
    public = import_public_jwk(public_jwk(key, "ES256"))
    token = sign_compact(b"{}", key, "ES256", {"typ": "at+jwt"})
    assert verify_split(split_unverified(token), public, frozenset({"ES256"}))[1] == b"{}"
    encoded_header = _b64(json.dumps(header).encode())
    fake = ".".join([encoded_header, *token.split(".")[1:]])
    with pytest.raises(InvalidTokenError) as caught:
        verify_split(split_unverified(fake), public, frozenset({"ES256"}))
    assert reason in caught.value.reason


def _by_kid(keys: dict[str, PublicKey]) -> Any:
    """A key choice as the token verifier makes it: the header's kid names the key."""

    def choose(header: Any, encoded_payload: str) -> tuple[PublicKey, frozenset[str], None]:
        kid = header.get("kid")
        if not isinstance(kid, str) or kid not in keys:
            raise InvalidTokenError("the token is invalid", "unknown kid")
        return keys[kid], frozenset({"ES256"}), None

    return choose


def test_the_header_memo_gives_a_look_alike_header_no_pass() -> None:
    """The memo is keyed by the exact segment: each header is parsed and checked on its own.

    After a good token's header is remembered, every header segment one character
    away, a validly signed header naming ``crit``, ``alg: none`` and an unknown
    ``kid`` are refused all the same.
    """
    key = ECKey.generate_key("P-256", private=True)
    key.ensure_kid()
    choose = _by_kid({str(key.kid): import_public_jwk(public_jwk(key, "ES256"))})
    good = sign_compact(b"{}", key, "ES256", {"typ": "at+jwt"})
    encoded_header, rest = good.split(".", 1)
    for _ in range(2):  # the second time from the memo
        assert verify_chosen(good, choose)[1] == b"{}"
    alphabet = string.ascii_letters + string.digits + "-_"
    for position, original in enumerate(encoded_header):
        for replacement in {alphabet[(alphabet.index(original) + 1) % 64], "A", "_"} - {original}:
            look_alike = encoded_header[:position] + replacement + encoded_header[position + 1 :]
            with pytest.raises(InvalidTokenError):
                verify_chosen(f"{look_alike}.{rest}", choose)
            with contextlib.suppress(InvalidTokenError):  # not base64url, JSON or an object
                assert _header(look_alike) is not _header(encoded_header)
    critical = sign_compact(b"{}", key, "ES256", {"typ": "at+jwt", "crit": ["exp"], "exp": 1})
    unknown = _b64(b'{"typ":"at+jwt","alg":"ES256","kid":"x"}')
    none = _b64(json.dumps({"typ": "at+jwt", "alg": "none", "kid": key.kid}).encode())
    for token, reason in [
        (critical, "critical"),
        (f"{unknown}.{rest}", "unknown kid"),
        (f"{none}.{rest}", "not allowed"),
        (f"{none}.{rest.split('.')[0]}.", "not allowed"),
    ]:
        with pytest.raises(InvalidTokenError) as caught:
            verify_chosen(token, choose)
        assert reason in caught.value.reason
    assert verify_chosen(good, choose)[1] == b"{}"


def test_the_header_memo_is_bounded() -> None:
    """Many distinct headers (one per forged token) cannot grow the memo past its size."""
    maxsize = _header.cache_info().maxsize
    assert maxsize is not None
    for n in range(maxsize + 50):
        _header(_b64(json.dumps({"alg": "ES256", "kid": str(n)}).encode()))
    assert _header.cache_info().currsize <= maxsize
