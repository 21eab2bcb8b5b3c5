"""The tls_client_auth hook (RFC 8705 §2): a verified certificate authenticates its client."""

from __future__ import annotations

from pathlib import Path

from interlock.config.loader import load_manifest
from interlock.config.settings import Settings
from interlock.oauth.client_secrets import ClientSecrets
from interlock.oauth.revocation import TokenRevocations
from interlock.oauth.revoked import RevokedTokens
from interlock.oauth.signing_keys import SigningKeys
from interlock.oauth.token_endpoint import TokenEndpoint, metadata
from interlock.oauth.tokens import AccessTokenVerifier, TokenIssuer
from interlock.store import initialise

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "interlock.yaml"
CERTIFICATE = b"0\x82 pretend DER of a verified certificate"


class Certificates:
    """A hook that knows one certificate, for order-sync."""

    def belongs_to(self, client_id: str, certificate: bytes) -> bool:
        return client_id == "order-sync" and certificate == CERTIFICATE


def _endpoint(tmp_path: Path, hook: Certificates | None) -> TokenEndpoint:
    deployment = initialise(
        Settings(data_dir=tmp_path / "d", database_url=f"sqlite:///{tmp_path}/s.db")
    )
    manifest = load_manifest(EXAMPLE)
    keys = SigningKeys(deployment.engine, deployment.keyring)
    keys.ensure()
    issuer = "https://gw.example"
    return TokenEndpoint(
        ClientSecrets(deployment.engine, deployment.keyring, manifest),
        TokenIssuer(keys, issuer),
        TokenRevocations(
            AccessTokenVerifier(keys, issuer, manifest), RevokedTokens(deployment.engine)
        ),
        certificates=hook,
    )


FORM = {"grant_type": ["client_credentials"], "client_id": ["order-sync"]}


def test_a_certificate_the_hook_accepts_gets_a_token(tmp_path: Path) -> None:
    """client_id plus the connection's certificate, no secret: a token."""
    endpoint = _endpoint(tmp_path, Certificates())
    answer = endpoint.handle([], FORM, "192.0.2.1", peer_certificate=CERTIFICATE)
    assert answer.status == 200, answer.body
    assert "tls_client_auth" in metadata(endpoint)["token_endpoint_auth_methods_supported"]


def test_another_certificate_or_client_is_invalid_client(tmp_path: Path) -> None:
    """The hook decides; a certificate of someone else is refused."""
    endpoint = _endpoint(tmp_path, Certificates())
    other = endpoint.handle([], FORM, None, peer_certificate=b"another certificate")
    assert (other.status, other.body["error"]) == (401, "invalid_client")
    form = {**FORM, "client_id": ["reporting"]}
    assert endpoint.handle([], form, None, peer_certificate=CERTIFICATE).status == 401


def test_without_a_hook_the_method_is_not_offered(tmp_path: Path) -> None:
    """Before the mutual-TLS work supplies the hook, certificates authenticate nobody."""
    endpoint = _endpoint(tmp_path, None)
    answer = endpoint.handle([], FORM, None, peer_certificate=CERTIFICATE)
    assert answer.status == 401
    assert "tls_client_auth" not in metadata(endpoint)["token_endpoint_auth_methods_supported"]
