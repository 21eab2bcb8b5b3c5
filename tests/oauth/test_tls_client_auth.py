"""The tls_client_auth hook (RFC 8705 §2): a verified certificate authenticates its client."""

from __future__ import annotations

from interlock.oauth.token_endpoint import metadata
from tests.oauth.conftest import OAuthKit, answer

CERTIFICATE = b"0\x82 pretend DER of a verified certificate"


class Certificates:
    """A hook that knows one certificate, for order-sync."""

    def belongs_to(self, client_id: str, certificate: bytes) -> bool:
        return client_id == "order-sync" and certificate == CERTIFICATE


FORM = {"grant_type": ["client_credentials"], "client_id": ["order-sync"]}


def test_a_certificate_the_hook_accepts_gets_a_token(kit: OAuthKit) -> None:
    """client_id plus the connection's certificate, no secret: a token."""
    endpoint = kit.endpoint(certificates=Certificates())
    answer = endpoint.handle([], FORM, "192.0.2.1", peer_certificate=CERTIFICATE)
    assert answer.status == 200, answer.body
    assert "tls_client_auth" in metadata(endpoint)["token_endpoint_auth_methods_supported"]


def test_another_certificate_or_client_is_invalid_client(kit: OAuthKit) -> None:
    """The hook decides; a certificate of someone else is refused."""
    endpoint = kit.endpoint(certificates=Certificates())
    other = answer(lambda: endpoint.handle([], FORM, None, peer_certificate=b"another one"))
    assert (other.status, other.body["error"]) == (401, "invalid_client")
    form = {**FORM, "client_id": ["reporting"]}
    refused = answer(lambda: endpoint.handle([], form, None, peer_certificate=CERTIFICATE))
    assert refused.status == 401


def test_without_a_hook_the_method_is_not_offered(kit: OAuthKit) -> None:
    """Before the mutual-TLS work supplies the hook, certificates authenticate nobody."""
    endpoint = kit.endpoint()
    refused = answer(lambda: endpoint.handle([], FORM, None, peer_certificate=CERTIFICATE))
    assert refused.status == 401
    assert "tls_client_auth" not in metadata(endpoint)["token_endpoint_auth_methods_supported"]
