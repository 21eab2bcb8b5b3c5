"""`interlock clients keygen`: a private_key_jwt key pair in one step, usable at once."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from interlock.cli.main import main
from interlock.config.loader import load_manifest
from interlock.config.settings import load_settings
from interlock.identity.client_keys import ClientKeys
from interlock.sdk import ClientCredentials, TokenRequestError
from interlock.store import open_deployment
from interlock.testing.gateway import Env, running_gateway
from tests.cli.test_json_output import check
from tests.conftest import isolate_cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "interlock.yaml"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def example(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An initialised deployment with the example manifest."""
    isolate_cli(monkeypatch, tmp_path, MANIFEST=str(EXAMPLE))
    assert main(["init"]) == 0
    capsys.readouterr()


def _registered(client: str) -> list[str]:
    deployment = open_deployment(load_settings())
    try:
        keys = ClientKeys(deployment.engine, deployment.keyring, load_manifest(EXAMPLE))
        return [k.kid for k in keys.list_keys(client, "assertion") if k.active]
    finally:
        deployment.close()


@pytest.mark.parametrize("alg", ["ES256", "Ed25519"])
def test_keygen_writes_a_0600_private_jwk_in_a_new_0700_directory_and_registers_it(
    example: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], alg: str
) -> None:
    """The file is private from its first byte, holds the private key, and its kid is registered."""
    out = tmp_path / "keys" / "new"
    doc = json.loads(
        _run(capsys, "clients", "keygen", "order-sync", "--alg", alg, "--out", str(out), "--json")[
            1
        ]
    )
    path = out / "order-sync.jwk"
    check("interlock clients keygen", doc)
    assert doc == {
        "client": "order-sync",
        "kid": doc["kid"],
        "alg": alg,
        "path": str(path),
        "expires_at": None,
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    jwk = json.loads(path.read_text())
    assert "d" in jwk  # the private member
    assert (jwk["kid"], jwk["alg"]) == (doc["kid"], alg)
    assert _registered("order-sync") == [doc["kid"]]
    assert [p.name for p in out.iterdir()] == ["order-sync.jwk"]  # no temporary file left


def test_keygen_never_overwrites_a_key_file_and_registers_nothing_then(
    example: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second keygen into the same directory is refused in one line; the first key stands."""
    status, out, _ = _run(capsys, "clients", "keygen", "order-sync", "--out", str(tmp_path))
    assert status == 0
    assert "private key written to" in out
    path = tmp_path / "order-sync.jwk"
    before = path.read_bytes()
    kids = _registered("order-sync")
    status, _, err = _run(capsys, "clients", "keygen", "order-sync", "--out", str(tmp_path))
    assert status == 1
    assert err.strip().endswith("exists; a key file is never overwritten")
    assert len(err.strip().splitlines()) == 1
    assert path.read_bytes() == before
    assert _registered("order-sync") == kids


def test_keygen_refuses_clients_that_cannot_use_oauth_or_do_not_exist(
    example: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An api_key client: one line naming its auth; a typo: did you mean; no file either way."""
    status, _, err = _run(capsys, "clients", "keygen", "analytics-feed", "--out", str(tmp_path))
    assert status == 1
    assert "client 'analytics-feed' may not use private_key_jwt: its auth is [api_key]" in err
    assert len(err.strip().splitlines()) == 1
    status, _, err = _run(capsys, "clients", "keygen", "ordr-sync", "--out", str(tmp_path))
    assert status == 1
    assert "no client 'ordr-sync' in the manifest; did you mean 'order-sync'?" in err
    status, _, err = _run(
        capsys, "clients", "keygen", "order-sync", "--alg", "RS256", "--out", str(tmp_path)
    )
    assert status == 1
    assert "--alg: 'RS256' is not one of ES256, Ed25519" in err
    assert list(tmp_path.glob("*.jwk")) == []


@pytest.fixture
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A real gateway (TLS, token endpoint) over its own deployment."""
    with running_gateway(tmp_path_factory.mktemp("keygen-gateway")) as env:
        yield env


@pytest.mark.processes
def test_the_written_key_gets_a_token_with_private_key_jwt_through_the_sdk(
    gateway: Env,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """keygen against the gateway's deployment, then the SDK authenticates with the file alone."""
    current = gateway.deployment.settings
    assert current.database_url is not None
    isolate_cli(
        monkeypatch,
        tmp_path,
        DATABASE_URL=current.database_url,
        MANIFEST=str(gateway.manifest_path),
    )
    monkeypatch.setenv("INTERLOCK_DATA_DIR", str(current.data_dir))
    keys = tmp_path / "client-keys"
    status, out, err = _run(
        capsys, "clients", "keygen", "oauth-only", "--alg", "Ed25519", "--out", str(keys), "--json"
    )
    assert status == 0, err
    kid = json.loads(out)["kid"]
    credentials = ClientCredentials(
        f"https://127.0.0.1:{gateway.port}/oauth2/token",
        "oauth-only",
        private_key=json.loads((keys / "oauth-only.jwk").read_text()),
        scope="orders.read",
        verify=gateway.ca_file,
    )
    token = credentials.token()
    gateway.issued_tokens.append(token.value)
    assert token.value.count(".") == 2
    status, _, err = _run(capsys, "clients", "revoke-key", "--", kid)
    assert status == 0, err
    intruder = ClientCredentials(
        f"https://127.0.0.1:{gateway.port}/oauth2/token",
        "oauth-only",
        private_key=json.loads((keys / "oauth-only.jwk").read_text()),
        scope="orders.read",
        verify=gateway.ca_file,
    )
    with pytest.raises(TokenRequestError) as refused:
        intruder.token()
    assert refused.value.error == "invalid_client"
