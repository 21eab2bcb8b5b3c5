"""ClientCredentials: configuration is checked up front, TLS always verifies, secrets never show."""

from __future__ import annotations

import pickle
import ssl

import pytest
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, RSAKey

from interlock.sdk import ClientCredentials, DPoPKey, InterlockAuth, InterlockRequestsAuth
from interlock.sdk.credentials import normalise_scope
from interlock.sdk.tls import client_context
from tests.sdk.fake_server import FakeServer

URL = "https://as.example/oauth2/token"
SECRET = "very-secret-value-0123456789"


def test_verify_false_is_refused() -> None:
    """There is no switch that turns TLS verification off."""
    with pytest.raises(ValueError, match="cannot be disabled"):
        ClientCredentials(URL, "c", client_secret=SECRET, verify=False)


def test_context_without_certificate_check_is_refused() -> None:
    """An SSLContext with CERT_NONE is refused."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError, match="must verify"):
        ClientCredentials(URL, "c", client_secret=SECRET, verify=context)


def test_context_without_host_name_check_is_refused() -> None:
    """Verifying the chain but not the host name is not verification either."""
    context = ssl.create_default_context()
    context.check_hostname = False
    with pytest.raises(ValueError, match="must verify"):
        ClientCredentials(URL, "c", client_secret=SECRET, verify=context)


def test_default_and_ca_file_contexts_verify(server: FakeServer) -> None:
    """Default: the system store; a path: that CA file; both verify host names."""
    for context in (client_context(None), client_context(True), client_context(server.ca_file)):
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname


@pytest.mark.parametrize(
    "url", ["http://as.example/token", "ftp://as.example/token", "https:///token"]
)
def test_token_url_must_be_https(url: str) -> None:
    """A secret is never sent over plain HTTP."""
    with pytest.raises(ValueError, match="https"):
        ClientCredentials(url, "c", client_secret=SECRET)


def test_exactly_one_credential_is_required() -> None:
    """Neither or both of client_secret and private_key is refused."""
    key = ECKey.generate_key("P-256", private=True)
    with pytest.raises(ValueError, match="exactly one"):
        ClientCredentials(URL, "c")
    with pytest.raises(ValueError, match="exactly one"):
        ClientCredentials(URL, "c", client_secret=SECRET, private_key=key)


def test_method_must_fit_the_credential() -> None:
    """private_key_jwt with a secret, or a secret method with a key, is refused."""
    key = ECKey.generate_key("P-256", private=True)
    with pytest.raises(ValueError, match="does not use a client_secret"):
        ClientCredentials(URL, "c", client_secret=SECRET, auth_method="private_key_jwt")
    with pytest.raises(ValueError, match="private_key_jwt"):
        ClientCredentials(URL, "c", private_key=key, auth_method="client_secret_post")


def test_weak_or_public_keys_are_refused() -> None:
    """RSA under 2048 bits, public keys and other curves are refused, naming no key material."""
    public = ECKey.generate_key("P-256", private=True).as_dict(private=False)
    with pytest.raises(ValueError, match="private key"):
        ClientCredentials(URL, "c", private_key=public)
    with pytest.warns(SecurityWarning):
        weak = RSAKey.generate_key(1024, private=True, auto_kid=False)
    with pytest.raises(ValueError, match="2048"):
        ClientCredentials(URL, "c", private_key=weak)
    p384 = ECKey.generate_key("P-384", private=True)
    with pytest.raises(ValueError, match="P-256"):
        ClientCredentials(URL, "c", private_key=p384)
    with pytest.raises(ValueError, match="not a usable") as caught:
        ClientCredentials(URL, "c", private_key=b"-----BEGIN PRIVATE KEY-----\nnope")
    assert "nope" not in str(caught.value)


def test_secret_and_key_never_show_in_repr_or_str() -> None:
    """repr and str of credentials and auth objects name the client, never the secret."""
    credentials = ClientCredentials(URL, "c", client_secret=SECRET, dpop=True)
    key = ECKey.generate_key("P-256", private=True)
    signed = ClientCredentials(URL, "c", private_key=key)
    texts = [
        repr(credentials),
        str(credentials),
        repr(InterlockAuth(credentials)),
        repr(InterlockRequestsAuth(credentials)),
        repr(signed),
        repr(credentials.dpop),
        repr(vars(credentials)),
    ]
    private = str(key.as_dict(private=True)["d"])
    for text in texts:
        assert SECRET not in text
        assert private not in text
    assert "c" in repr(credentials)


def test_credentials_and_dpop_keys_refuse_pickling() -> None:
    """Neither the secret nor a private key can leave the process by pickling."""
    credentials = ClientCredentials(URL, "c", client_secret=SECRET)
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(credentials)
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(DPoPKey())


def test_scope_is_normalised() -> None:
    """Order and duplicates do not make a different cache entry (RFC 6749 §3.3)."""
    assert normalise_scope("b a  b") == "a b"
    assert normalise_scope(["b", "a"]) == "a b"
    assert normalise_scope(None) is None
    assert normalise_scope("") is None
    credentials = ClientCredentials(URL, "c", client_secret=SECRET, scope=["x", "y"])
    assert credentials.key() == credentials.key("y x")
    assert credentials.key("z").scope == "z"
    assert credentials.key(resource="https://r.example").resource == "https://r.example"
