"""The JOSE layer: Wycheproof signature vectors and the RFC 8725 refusals."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from interlock.crypto.jose import (
    MAX_TOKEN_BYTES,
    PublicKey,
    generate_signing_key,
    import_public_jwk,
    public_jwk,
    sign_compact,
    unverified_header,
    verify_compact,
    verify_signature,
)
from interlock.errors import InvalidTokenError
from tests.crypto.vectors import WYCHEPROOF, nonempty, vector_file

SIGNATURE_FILES = [
    ("ecdsa_secp256r1_sha256_p1363_test.json", "ES256", "publicKeyJwk"),
    ("ed25519_test.json", "Ed25519", "publicKeyJwk"),
    ("rsa_signature_2048_sha256_test.json", "RS256", "keyJwk"),
    # PS256 (trusted issuers, issue 17 item 9): RSASSA-PSS, SHA-256, MGF1-SHA-256, 32-byte salt.
    ("rsa_pss_2048_sha256_mgf1_32_test.json", "PS256", "publicKeyJwk"),
]


def _groups(name: str) -> list[dict[str, Any]]:
    path = vector_file(WYCHEPROOF / name)
    groups: list[dict[str, Any]] = json.loads(path.read_text())["testGroups"]
    nonempty([t for g in groups for t in g["tests"]], f"Wycheproof vectors from {name}")
    return groups


@pytest.mark.parametrize(("name", "alg", "jwk_field"), SIGNATURE_FILES)
def test_wycheproof_signatures(name: str, alg: str, jwk_field: str) -> None:
    """Every valid signature verifies and every invalid one is refused."""
    valid = invalid = 0
    for group in _groups(name):
        key = (
            import_public_jwk(group[jwk_field])
            if jwk_field in group
            else ECKey.import_key(group["publicKeyPem"])
        )
        for case in group["tests"]:
            ok = verify_signature(alg, key, bytes.fromhex(case["msg"]), bytes.fromhex(case["sig"]))
            if case["result"] == "valid":
                assert ok, f"{name} tcId {case['tcId']} should verify"
                valid += 1
            elif case["result"] == "invalid":
                assert not ok, f"{name} tcId {case['tcId']} should be refused"
                invalid += 1
    assert valid > 0
    assert invalid > 0


@pytest.mark.parametrize("alg", ["ES256", "Ed25519", "RS256"])
def test_round_trip_for_each_allowed_algorithm(alg: str) -> None:
    """Sign, publish the public JWK, verify by kid."""
    key = generate_signing_key(alg)
    token = sign_compact(b'{"sub":"order-sync"}', key, alg, {"typ": "at+jwt"})
    public = import_public_jwk(public_jwk(key, alg))
    assert key.kid is not None
    header, payload = verify_compact(token, {key.kid: public})
    assert payload == b'{"sub":"order-sync"}'
    assert header["typ"] == "at+jwt"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, Any], payload: bytes = b"{}", signature: bytes = b"x") -> str:
    return ".".join([_b64(json.dumps(header).encode()), _b64(payload), _b64(signature)])


@pytest.fixture
def issuer() -> tuple[ECKey, dict[str, Any]]:
    """An ES256 signing key and the verifier's key map."""
    key = generate_signing_key("ES256")
    assert isinstance(key, ECKey)
    assert key.kid is not None
    return key, {key.kid: import_public_jwk(public_jwk(key, "ES256"))}


def test_deprecated_polymorphic_eddsa_is_not_offered() -> None:
    """RFC 9864: sign and verify with the fully specified Ed25519 instead of EdDSA."""
    with pytest.raises(InvalidTokenError):
        generate_signing_key("EdDSA")


def test_alg_none_is_refused(issuer: tuple[ECKey, dict[str, Any]]) -> None:
    """An unsigned token never verifies."""
    key, keys = issuer
    with pytest.raises(InvalidTokenError) as caught:
        verify_compact(_forge({"alg": "none", "kid": key.kid}, signature=b""), keys)
    assert "not allowed" in caught.value.reason


def test_hs256_with_the_public_key_as_secret_is_refused(
    issuer: tuple[ECKey, dict[str, Any]],
) -> None:
    """The classic key-confusion attack: HMAC keyed with the issuer's public key."""
    key, keys = issuer
    secret = OctKey.import_key(json.dumps(public_jwk(key, "ES256")).encode())
    token = jws.serialize_compact(
        {"alg": "HS256", "kid": key.kid}, b"{}", secret, algorithms=["HS256"]
    )
    with pytest.raises(InvalidTokenError):
        verify_compact(token, keys)


def test_unknown_crit_is_refused(issuer: tuple[ECKey, dict[str, Any]]) -> None:
    """A critical extension we do not understand makes the token invalid."""
    key, keys = issuer
    token = _forge({"alg": "ES256", "kid": key.kid, "crit": ["exp"], "exp": 1})
    with pytest.raises(InvalidTokenError) as caught:
        verify_compact(token, keys)
    assert "critical" in caught.value.reason


def test_embedded_jwk_is_never_trusted(issuer: tuple[ECKey, dict[str, Any]]) -> None:
    """An attacker signing with their own key and embedding it gets nowhere."""
    _, keys = issuer
    attacker = generate_signing_key("ES256")
    token = sign_compact(b"{}", attacker, "ES256", {"jwk": public_jwk(attacker, "ES256")})
    with pytest.raises(InvalidTokenError) as caught:
        verify_compact(token, keys)
    assert caught.value.reason == "unknown kid"


@pytest.mark.parametrize("kid", ["../../etc/passwd", "' OR 1=1 --", "", None])
def test_odd_kids_are_just_unknown(issuer: tuple[ECKey, dict[str, Any]], kid: object) -> None:
    """A kid is only ever a dictionary key: path- or SQL-like values are simply unknown."""
    with pytest.raises(InvalidTokenError):
        verify_compact(_forge({"alg": "ES256", "kid": kid}), issuer[1])


def test_tampered_payload_is_refused(issuer: tuple[ECKey, dict[str, Any]]) -> None:
    """Changing the payload breaks the signature."""
    key, keys = issuer
    header, _, signature = sign_compact(b'{"scope":"orders.read"}', key, "ES256").split(".")
    tampered = ".".join([header, _b64(b'{"scope":"orders.write"}'), signature])
    with pytest.raises(InvalidTokenError):
        verify_compact(tampered, keys)


def test_oversized_token_is_refused_before_parsing(issuer: tuple[ECKey, dict[str, Any]]) -> None:
    """The size cap comes first."""
    with pytest.raises(InvalidTokenError) as caught:
        verify_compact("a" * (MAX_TOKEN_BYTES + 1), issuer[1])
    assert "larger" in caught.value.reason


def test_private_members_in_a_public_jwk_are_refused() -> None:
    """A JWKS entry with private key material is a configuration error, not a key."""
    key = generate_signing_key("ES256")
    with pytest.raises(InvalidTokenError):
        import_public_jwk(key.as_dict(private=True))


def test_failures_are_opaque(issuer: tuple[ECKey, dict[str, Any]]) -> None:
    """Every refusal shows the same message; only the log-side reason differs."""
    _, keys = issuer
    messages = set()
    for token in (_forge({"alg": "none"}), _forge({"alg": "ES256", "kid": "x"}), "a" * 9000):
        with pytest.raises(InvalidTokenError) as caught:
            verify_compact(token, keys)
        messages.add(str(caught.value))
    assert messages == {"the token is invalid"}


def _signed_with(alg: str, key: ECKey | OKPKey | RSAKey) -> tuple[PublicKey, bytes]:
    """A signature made with ``alg``'s primitive under a key that ``alg`` does not name."""
    signature = jws.JWSRegistry.algorithms[alg].sign(b"message", key)
    return import_public_jwk(key.as_dict(private=False)), signature


@pytest.mark.parametrize(
    ("alg", "kty", "curve"),
    [("ES256", "EC", "P-384"), ("ES256", "EC", "secp256k1"), ("Ed25519", "OKP", "Ed448")],
)
def test_the_algorithm_is_bound_to_its_curve(alg: str, kty: str, curve: str) -> None:
    """RFC 7518 §3.4: ES256 is ECDSA on P-256 only; RFC 9864: Ed25519 is not Ed448."""
    key = (
        ECKey.generate_key(curve, private=True)
        if kty == "EC"
        else OKPKey.generate_key(curve, private=True)  # type: ignore[arg-type]
    )
    public, signature = _signed_with(alg, key)
    assert not verify_signature(alg, public, b"message", signature)


@pytest.mark.parametrize(
    ("alg", "key"),
    [
        ("ES256", RSAKey.generate_key(2048, private=True)),
        ("ES256", OKPKey.generate_key("Ed25519", private=True)),
        ("RS256", ECKey.generate_key("P-256", private=True)),
        ("Ed25519", ECKey.generate_key("P-256", private=True)),
    ],
    ids=["ES256-RSA", "ES256-OKP", "RS256-EC", "Ed25519-EC"],
)
def test_a_key_of_another_type_is_a_refusal_not_an_error(
    alg: str, key: ECKey | OKPKey | RSAKey
) -> None:
    """A key the algorithm cannot use answers False (it used to raise AttributeError)."""
    public = import_public_jwk(key.as_dict(private=False))
    assert not verify_signature(alg, public, b"message", b"x" * 64)


@pytest.mark.parametrize("marking", [{"use": "enc"}, {"key_ops": ["encrypt"]}])
def test_an_encryption_key_never_verifies_a_signature(marking: dict[str, Any]) -> None:
    """RFC 7517 §4.2, §4.3: a key marked for encryption is not a signature key."""
    key = ECKey.generate_key("P-256", private=True)
    signature = jws.JWSRegistry.algorithms["ES256"].sign(b"message", key)
    public = import_public_jwk({**key.as_dict(private=False), **marking})
    assert not verify_signature("ES256", public, b"message", signature)


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "ES256", "kid": ["a", "b"]},
        {"alg": "ES256", "kid": {"a": 1}},
        {"alg": ["ES256"], "kid": "k"},
    ],
)
def test_odd_header_types_are_refused(header: dict[str, Any]) -> None:
    """A kid or alg that is not a string is refused, never a TypeError."""
    key = generate_signing_key("ES256")
    with pytest.raises(InvalidTokenError):
        verify_compact(_forge(header), {"k": import_public_jwk(public_jwk(key, "ES256"))})


def test_deeply_nested_json_is_refused() -> None:
    """A header or payload nested past the parser's recursion limit is refused cleanly."""
    nested = b"[" * 2500 + b"]" * 2500  # past the recursion limit, within the size cap
    with pytest.raises(InvalidTokenError):
        unverified_header(_b64(nested) + ".e30.c2ln")
    with pytest.raises(InvalidTokenError):
        verify_compact(f"{_b64(nested)}.e30.c2ln", {})
