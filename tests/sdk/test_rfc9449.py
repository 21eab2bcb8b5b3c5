"""DPoP proofs (RFC 9449): contents verified with joserfc and with Interlock's DPoPVerifier."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from interlock.crypto.rfc9449 import normalise_htu as target_uri
from interlock.errors import DPoPProofError
from interlock.oauth.dpop import DPoPNonces, DPoPVerifier, access_token_hash
from interlock.replay.seen import MemorySeen
from interlock.sdk import DPoPKey, TokenRequestError
from tests.sdk.fake_server import FakeServer, credentials_for

URL = "https://api.example:8443/orders/1?x=1#frag"


def _open(proof: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify ``proof`` with the public key from its own header; return header and claims."""
    parsed = jws.extract_compact(proof.encode())
    header = parsed.headers()
    key = ECKey.import_key(header["jwk"])
    verified = jws.deserialize_compact(proof, key, algorithms=["ES256"])
    return verified.headers(), json.loads(verified.payload)


def test_proof_header_and_claims() -> None:
    """typ dpop+jwt, ES256, public jwk only; jti, htm, htu without query/fragment, iat, ath."""
    key = DPoPKey()
    before = int(time.time())
    header, claims = _open(key.proof("GET", URL, "the-token"))
    assert header["typ"] == "dpop+jwt"
    assert header["alg"] == "ES256"
    assert set(header["jwk"]) == {"kty", "crv", "x", "y"}
    assert "d" not in header["jwk"]
    assert claims["htm"] == "GET"
    assert claims["htu"] == "https://api.example:8443/orders/1"
    assert before <= claims["iat"] <= time.time()
    assert claims["ath"] == access_token_hash("the-token")
    assert "nonce" not in claims
    assert len(str(claims["jti"])) >= 16


def test_each_proof_has_a_new_jti_and_no_ath_without_token() -> None:
    """jti is random per proof; a token request proof has no ath."""
    key = DPoPKey()
    first, second = (_open(key.proof("POST", URL))[1] for _ in range(2))
    assert first["jti"] != second["jti"]
    assert "ath" not in first


def test_interlock_verifier_accepts_the_proof() -> None:
    """The gateway's own DPoPVerifier accepts the proof and derives our thumbprint."""
    key = DPoPKey()
    verifier = DPoPVerifier(MemorySeen())
    checked = verifier.check(key.proof("PUT", URL, "tok"), "PUT", URL, "tok")
    assert checked.jkt == key.thumbprint
    with pytest.raises(DPoPProofError):
        verifier.check(key.proof("PUT", URL, "tok"), "PUT", URL, "other-token")


def test_nonce_is_remembered_per_origin() -> None:
    """A DPoP-Nonce goes into later proofs for that origin only (§8.2)."""
    key = DPoPKey()
    nonces = DPoPNonces(b"k" * 32)
    nonce = nonces.current()
    assert key.remember_nonce("https://api.example:8443/a", {"DPoP-Nonce": nonce})
    assert not key.remember_nonce("https://api.example:8443/b", {"DPoP-Nonce": nonce})
    assert _open(key.proof("GET", URL))[1]["nonce"] == nonce
    assert "nonce" not in _open(key.proof("GET", "https://api.example/orders"))[1]
    verifier = DPoPVerifier(MemorySeen(), nonces=nonces)
    verifier.check(key.proof("GET", URL), "GET", URL)


@pytest.mark.parametrize("nonce", ["", "has space", 'quo"te', "x" * 300])
def test_malformed_nonces_are_ignored(nonce: str) -> None:
    """Only RFC 9449 §8.1 NQCHAR nonces up to 256 characters are kept."""
    key = DPoPKey()
    assert not key.remember_nonce(URL, {"DPoP-Nonce": nonce})
    assert "nonce" not in _open(key.proof("GET", URL))[1]


def test_target_uri() -> None:
    """Query, fragment and default port go; case of scheme and host is normalised."""
    assert target_uri("HTTPS://API.Example:443/a/b?q#f") == "https://api.example/a/b"
    assert target_uri("https://[::1]:8443") == "https://[::1]:8443/"


def test_given_key_is_used_and_other_curves_refused() -> None:
    """A given P-256 key (object, JWK or PEM) is used; other curves are refused."""
    private = ECKey.generate_key("P-256", private=True)
    for given in (private, private.as_dict(private=True), private.as_pem(private=True)):
        assert DPoPKey(given).thumbprint == private.thumbprint()
    with pytest.raises(ValueError, match="P-256"):
        DPoPKey(ECKey.generate_key("P-384", private=True))
    with pytest.raises(ValueError, match="P-256"):
        DPoPKey(private.as_dict(private=False))


def test_bound_token_with_nonce_at_the_token_endpoint(server: FakeServer) -> None:
    """use_dpop_nonce from the token endpoint: one retry with the nonce, then a DPoP token."""
    server.require_nonces()
    credentials = credentials_for(server, dpop=True)
    token = credentials.token()
    assert token.token_type == "DPoP"
    assert credentials.dpop is not None
    assert server.valid[token.value] == credentials.dpop.thumbprint
    assert server.fetches == 2
    first, second = server.token_requests
    assert "nonce" not in _open(first.headers["dpop"])[1]
    assert "nonce" in _open(second.headers["dpop"])[1]


def test_a_bearer_token_when_dpop_was_asked_is_refused(server: FakeServer) -> None:
    """No silent downgrade: a server answering with a Bearer token is an invalid_response."""
    server.token_type = "Bearer"
    with pytest.raises(TokenRequestError, match="expected a DPoP token"):
        credentials_for(server, dpop=True).token()
