"""Gateway traffic continues across a rotation of its upstream credential (erp/api-key).

The ERP upstream accepts every token listed in its token file; a rotator for
it adds the new token on *set* and removes the old one on *retire*, as a real
system holding two credentials would. Requests flow through the gateway
without pause while the secret is rotated, through the overlap (longer than
the gateway's 5-second cache of resolved secrets) and past the retire: none
may fail.
"""

from __future__ import annotations

import http.client
import secrets
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from interlock.actors import Operator
from interlock.audit.sink import MemorySink
from interlock.secrets.rotation import RotationEngine
from interlock.secrets.rotators.base import Credential, RotationError
from interlock.secrets.vault import Vault
from interlock.testing.gateway import Env, running_gateway

OVERLAP_SECONDS = 7  # the gateway may serve a value up to 5 s after it changed


class TokenFileRotator:
    """Rotates the ERP's bearer token by editing the file the ERP reads its tokens from."""

    def __init__(self, env: Env, token_file: Path) -> None:
        self._env = env
        self._file = token_file
        self._lock = threading.Lock()

    def generate(self, current: Credential) -> bytes:
        return ("erp-outbound-" + secrets.token_hex(16)).encode()

    def set(self, pending: Credential, current: Credential) -> None:
        self._edit(add=pending.value.reveal().decode())

    def test(self, pending: Credential) -> None:
        if self._erp_status(pending.value.reveal().decode()) != 200:
            raise RotationError("the ERP does not accept the new token")

    def retire(self, old: Credential, current: Credential) -> None:
        self._edit(remove=old.value.reveal().decode())

    def _edit(self, add: str | None = None, remove: str | None = None) -> None:
        with self._lock:
            tokens = [t for t in self._file.read_text().split() if t != remove]
            if add is not None and add not in tokens:
                tokens.append(add)
            fresh = self._file.with_suffix(".new")
            fresh.write_text("\n".join(tokens) + "\n")
            fresh.chmod(0o600)
            fresh.replace(self._file)

    def _erp_status(self, token: str) -> int:
        url = urlsplit(self._env.gateway.gateway.manifest.systems["erp"].url)
        context = ssl.create_default_context(cafile=str(self._env.ca_file))
        connection = http.client.HTTPSConnection(
            url.hostname or "localhost", url.port, context=context, timeout=10
        )
        try:
            connection.request(
                "GET", "/sap/opu/odata/orders/1001", headers={"Authorization": f"Bearer {token}"}
            )
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()


@pytest.fixture
def own_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """A gateway of this test's own: the rotation must not disturb the shared one.

    Every read of the credential is audited; on a loaded machine the default
    2 s for the audit log to confirm an entry is too short, and a refused read
    would fail a request for a reason unrelated to rotation.
    """
    monkeypatch.setenv("INTERLOCK_AUDIT_TIMEOUT_SECONDS", "30")
    with running_gateway(tmp_path) as env:
        yield env


@pytest.mark.timeout(600)  # a gateway of its own, and at least 7 s of overlap, on a shared machine
@pytest.mark.processes
def test_requests_through_the_gateway_never_fail_while_the_upstream_credential_rotates(
    own_env: Env, tmp_path: Path
) -> None:
    """Continuous traffic across create, set, test, promote, the overlap and the retire."""
    env = own_env
    token, _ = env.key(["orders.read"])
    headers = {"Authorization": f"Bearer {token}"}
    vault = Vault(
        env.deployment.engine, env.deployment.keyring, cache_seconds=0, audit=MemorySink()
    )
    vault.configure(
        "erp/api-key", actor=Operator("admin:test"), overlap=OVERLAP_SECONDS, rotator="test"
    )
    rotator = TokenFileRotator(env, tmp_path / "erp-token")
    engine = RotationEngine(vault, env.deployment.engine, lambda _info: rotator, audit=MemorySink())

    statuses: list[int] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            status, _, _ = env.request("GET", "/orders/1001", headers)
            statuses.append(status)

    workers = [threading.Thread(target=traffic) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        deadline = time.monotonic() + 60
        while len(statuses) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        before = len(statuses)
        assert engine.rotate("erp/api-key") == 2
        promoted = time.monotonic()
        assert engine.retire("erp/api-key") is None  # still in its overlap
        time.sleep(max(0.0, OVERLAP_SECONDS + 0.5 - (time.monotonic() - promoted)))
        assert engine.retire("erp/api-key") == 1
        retired_at = len(statuses)
        time.sleep(2.0)
    finally:
        stop.set()
        for worker in workers:
            worker.join(15)

    assert before > 0
    assert len(statuses) > retired_at > before
    failures = [s for s in statuses if s != 200]
    assert failures == [], f"{len(failures)} of {len(statuses)} requests failed: {set(failures)}"
    assert rotator._erp_status(env.erp_token) == 401
    new = vault.read("erp/api-key", actor=Operator("admin:test"))[0].reveal().decode()
    assert rotator._erp_status(new) == 200
