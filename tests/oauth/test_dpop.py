"""DPoP proof checks without HTTP: server nonces, URI normalisation, algorithms."""

from __future__ import annotations

import json
import secrets
import time
import warnings
from typing import Any

import pytest
from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from interlock.errors import DPoPProofError
from interlock.oauth.dpop import DPoPNonces, DPoPVerifier, access_token_hash, normalise_htu
from interlock.replay.seen import MemorySeen

URL = "https://gw.example/orders/1"


def _proof(key: Any, alg: str, **claims: Any) -> str:
    body = {"jti": secrets.token_urlsafe(8), "htm": "GET", "htu": URL, "iat": int(time.time())}
    body.update(claims)
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": key.as_dict(private=False)}
    return jws.serialize_compact(header, json.dumps(body).encode(), key, algorithms=[alg])


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        (ECKey.generate_key("P-256", private=True), "ES256"),
        (OKPKey.generate_key("Ed25519", private=True), "Ed25519"),
        (RSAKey.generate_key(2048, private=True), "RS256"),
    ],
)
def test_each_allowed_algorithm_verifies(key: Any, alg: str) -> None:
    """ES256, Ed25519 and RS256 proofs; the thumbprint is the key's RFC 7638 one."""
    checked = DPoPVerifier(MemorySeen()).check(_proof(key, alg), "GET", URL)
    assert checked.jkt == key.thumbprint()


def test_hmac_and_small_rsa_proofs_are_refused() -> None:
    """No symmetric algorithm, no RSA below 2048 bits."""
    verifier = DPoPVerifier(MemorySeen())
    oct_key = OctKey.generate_key(256)
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "AAAA"}}
    claims = {"jti": "a", "htm": "GET", "htu": URL, "iat": int(time.time())}
    forged = jws.serialize_compact(
        header, json.dumps(claims).encode(), oct_key, algorithms=["HS256"]
    )
    with pytest.raises(DPoPProofError):
        verifier.check(forged, "GET", URL)
    with warnings.catch_warnings():  # joserfc warns about the small key; we refuse it
        warnings.simplefilter("ignore", SecurityWarning)
        small = RSAKey.generate_key(1024, private=True)
        with pytest.raises(DPoPProofError, match="invalid"):
            verifier.check(_proof(small, "RS256"), "GET", URL)


def test_nonce_is_required_when_configured() -> None:
    """Without a nonce: use_dpop_nonce; with the current one: accepted; forged: refused."""
    now = [1_000_000.0]
    nonces = DPoPNonces(b"k" * 32, clock=lambda: now[0])
    verifier = DPoPVerifier(MemorySeen(), nonces=nonces)
    key = ECKey.generate_key("P-256", private=True)
    with pytest.raises(DPoPProofError) as missing:
        verifier.check(_proof(key, "ES256"), "GET", URL)
    assert missing.value.error == "use_dpop_nonce"
    assert verifier.check(_proof(key, "ES256", nonce=nonces.current()), "GET", URL)
    forged = DPoPNonces(b"x" * 32, clock=lambda: now[0]).current()
    with pytest.raises(DPoPProofError):
        verifier.check(_proof(key, "ES256", nonce=forged), "GET", URL)


def test_nonces_expire_after_two_windows() -> None:
    """A nonce is good in its window and the next, then no longer."""
    now = [3_000.0]
    nonces = DPoPNonces(b"k" * 32, clock=lambda: now[0])
    issued = nonces.current()
    now[0] += 300
    assert nonces.valid(issued)
    now[0] += 300
    assert not nonces.valid(issued)
    assert not nonces.valid(None)
    assert not nonces.valid("x" * 100)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://GW.example:443/a?b=1#c", "https://gw.example/a"),
        ("https://gw.example:8443/a", "https://gw.example:8443/a"),
        ("https://gw.example", "https://gw.example/"),
        ("https://[::1]:9443/x", "https://[::1]:9443/x"),
    ],
)
def test_htu_normalisation(given: str, expected: str) -> None:
    """Scheme and host case, default port, query and fragment do not matter."""
    assert normalise_htu(given) == expected


def test_ath_is_the_base64url_sha256_of_the_token() -> None:
    """RFC 9449 §4.2 example shape: 43 characters, no padding."""
    value = access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU")
    assert value == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"


@pytest.mark.parametrize(
    "htu", ["https://gw.example:99999/orders/1", "https://[::1/orders/1", "https://gw.example:x/"]
)
def test_an_htu_that_is_no_uri_is_an_invalid_proof(htu: str) -> None:
    """A port out of range or a broken IPv6 host: invalid_dpop_proof, not a ValueError (a 500)."""
    key = ECKey.generate_key("P-256", private=True)
    with pytest.raises(DPoPProofError) as refused:
        DPoPVerifier(MemorySeen()).check(_proof(key, "ES256", htu=htu), "GET", URL)
    assert refused.value.error == "invalid_dpop_proof"
