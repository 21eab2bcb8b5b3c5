"""The webhook rotator against a local HTTPS endpoint whose CA is made at run time."""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from interlock.audit.sink import MemorySink
from interlock.config.settings import Settings
from interlock.crypto.pkix import (
    certificate_pem,
    self_signed_ca,
)
from interlock.errors import InvalidRequestError
from interlock.secrets import rotators
from interlock.secrets.rotation import RotationEngine
from interlock.secrets.rotators.base import RotationError, RotatorContext
from interlock.secrets.vault import SecretInfo, Vault
from interlock.store import Deployment, initialise
from interlock.testing.tls import https_server, make_tls
from tests.secrets.rotation_support import ADMIN

HOOK_TOKEN = "Bearer hook-" + "a1" * 16


class Endpoint:
    """A system that keeps the tokens it accepts and takes rotations over HTTPS."""

    def __init__(self) -> None:
        self.accepted: set[str] = {"first-value"}
        self.steps: list[tuple[str, int]] = []
        self.lock = threading.Lock()


def _handler(endpoint: Endpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            supplied = self.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(supplied, HOOK_TOKEN.encode()):
                self._answer(401)
                return
            body: dict[str, Any] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with endpoint.lock:
                endpoint.steps.append((body["step"], body["version"]))
                if body["step"] == "set":
                    endpoint.accepted.add(body["value"])
                elif body["step"] == "retire":
                    endpoint.accepted.discard(body["value"])
                elif body["value"] not in endpoint.accepted:
                    self._answer(409)
                    return
            self._answer(204)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    return Handler


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[tuple[Endpoint, str, Path]]:
    """The endpoint, its URL and the CA file that trusts it (made now, valid one day)."""
    tls = make_tls(tmp_path, "Rotation test CA")
    state = Endpoint()
    with https_server(_handler(state), tls) as server:
        yield state, f"https://localhost:{server.server_address[1]}/rotate", tls.ca_file


_DEPLOYMENTS: dict[int, Deployment] = {}


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    """A vault with the endpoint's own credential and the hook's auth header."""
    deployment = initialise(
        Settings(data_dir=tmp_path / "d", database_url=f"sqlite:///{tmp_path / 's.db'}")
    )
    opened = Vault(deployment.engine, deployment.keyring, audit=MemorySink(), cache_seconds=0)
    opened.write("partner/token", b"first-value", actor=ADMIN, kind="webhook")
    opened.write("partner/hook-auth", HOOK_TOKEN.encode(), actor=ADMIN)
    _DEPLOYMENTS[id(opened)] = deployment
    yield opened
    del _DEPLOYMENTS[id(opened)]
    deployment.close()


def _unused() -> Any:
    raise AssertionError("the webhook rotator needs neither the manifest nor the PKI")


def _engine(vault: Vault, later: timedelta = timedelta(0)) -> RotationEngine:
    deployment = _DEPLOYMENTS[id(vault)]
    context = RotatorContext(
        vault=vault,
        engine=deployment.engine,
        keyring=deployment.keyring,
        manifest=_unused,
        pki=_unused,
    )

    def build(info: SecretInfo) -> rotators.Rotator:
        return rotators.build(info.rotator or "", info.rotator_config, context)

    return RotationEngine(
        vault,
        deployment.engine,
        build,
        actor=ADMIN,
        now=lambda: datetime.now(UTC) + later,
        audit=MemorySink(),
    )


def _configure(vault: Vault, url: str, ca: Path, **more: str) -> None:
    options = {"url": url, "ca": str(ca), "auth": "secret://partner/hook-auth"} | more
    vault.configure(
        "partner/token", actor=ADMIN, overlap=60, rotator="webhook", rotator_config=options
    )


def test_the_webhook_rotator_sets_tests_and_later_retires_over_verified_https(
    vault: Vault, endpoint: tuple[Endpoint, str, Path]
) -> None:
    """The endpoint takes the new value, checks it, and drops the old one after the overlap."""
    state, url, ca = endpoint
    _configure(vault, url, ca)
    assert _engine(vault).rotate("partner/token") == 2
    new = vault.read("partner/token", actor=ADMIN)[0].reveal().decode()
    assert state.accepted == {"first-value", new}
    assert _engine(vault, timedelta(minutes=2)).retire("partner/token") == 1
    assert state.accepted == {new}
    assert state.steps == [("set", 2), ("test", 2), ("retire", 1)]


def test_an_endpoint_not_trusted_by_the_configured_ca_is_refused(
    vault: Vault, endpoint: tuple[Endpoint, str, Path], tmp_path: Path
) -> None:
    """Verification is always on: a CA that did not issue the endpoint's certificate fails."""
    _, url, _ = endpoint
    other, _ = self_signed_ca("Someone else", timedelta(days=1))
    (tmp_path / "other.pem").write_bytes(certificate_pem(other))
    _configure(vault, url, tmp_path / "other.pem")
    with pytest.raises(RotationError, match="could not be reached"):
        _engine(vault).rotate("partner/token")
    assert vault.read("partner/token", actor=ADMIN)[1].version == 1


def test_a_wrong_auth_header_fails_the_set_step_and_nothing_is_promoted(
    vault: Vault, endpoint: tuple[Endpoint, str, Path]
) -> None:
    """A 401 is a failure; the current value stays current."""
    state, url, ca = endpoint
    vault.write("partner/hook-auth", b"Bearer wrong", actor=ADMIN)
    _configure(vault, url, ca)
    with pytest.raises(RotationError, match="answered 401"):
        _engine(vault).rotate("partner/token")
    assert vault.read("partner/token", actor=ADMIN)[1].version == 1
    assert state.accepted == {"first-value"}


@pytest.mark.parametrize(
    "url", ["http://localhost:1/rotate", "https://user:pw@localhost:1/rotate", "ftp://x/y"]
)
def test_only_https_urls_without_credentials_are_accepted(
    vault: Vault, url: str, tmp_path: Path
) -> None:
    """Deny by default: plain HTTP or credentials in the URL are configuration errors."""
    _configure(vault, url, tmp_path / "none.pem")
    with pytest.raises(InvalidRequestError):
        _engine(vault).rotate("partner/token")
