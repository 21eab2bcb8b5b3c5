"""`interlock clients`: secrets shown once, keys registered by file, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import ECKey, OKPKey

from interlock.cli.main import main
from interlock.config.loader import load_manifest
from interlock.config.settings import load_settings
from interlock.errors import AuthenticationError
from interlock.identity.client_secrets import ClientSecrets
from interlock.store import open_deployment
from tests.conftest import isolate_cli

MANIFEST = """\
version: 1
systems:
  erp: {url: "https://erp.internal", location: DE}
roles:
  reader: {scopes: [orders.read]}
clients:
  app: {auth: [oauth2, mtls], roles: [reader]}
  legacy: {auth: [api_key], roles: [reader]}
integrations:
  f:
    source: erp
    target: erp
    client: legacy
    purpose: test
    legal_basis: contract
    retention: 1d
    routes:
      - {method: GET, path: "/a", upstream: erp, scope: orders.read}
"""


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test gets its own data directory and no inherited INTERLOCK_* settings."""
    isolate_cli(monkeypatch, tmp_path)


@pytest.fixture
def manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """An initialised deployment and a manifest with an OAuth client `app`."""
    path = tmp_path / "interlock.yaml"
    path.write_text(MANIFEST)
    assert main(["init"]) == 0
    capsys.readouterr()
    return path


@pytest.fixture
def secrets(manifest: Path) -> Iterator[ClientSecrets]:
    """The secret service on the CLI's deployment, to check what the CLI printed."""
    deployment = open_deployment(load_settings())
    try:
        yield ClientSecrets(deployment.engine, deployment.keyring, load_manifest(manifest))
    finally:
        deployment.close()


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _works(secrets: ClientSecrets, secret: str) -> bool:
    try:
        return secrets.authenticate("app", secret) == "app"
    except AuthenticationError:
        return False


def _listed(capsys: pytest.CaptureFixture[str], manifest: Path) -> dict[str, dict[str, Any]]:
    status, out, _ = _run(capsys, "clients", "list", "--json", "-m", str(manifest))
    assert status == 0
    return {entry["client"]: entry for entry in json.loads(out)["clients"]}


def test_create_prints_the_secret_once_on_stdout_only(
    manifest: Path, secrets: ClientSecrets, capsys: pytest.CaptureFixture[str]
) -> None:
    """stdout is the secret and nothing else; stderr has its id and the shown-once notice."""
    status, out, err = _run(capsys, "clients", "create", "app", "-m", str(manifest))
    assert status == 0
    secret = out.strip()
    assert out == f"{secret}\n"
    assert secret.startswith("ilcs_")
    assert secret not in err
    assert "shown once" in err
    assert err.split()[2] in secret  # the id is part of the secret
    assert _works(secrets, secret)


def test_create_with_a_lifetime_and_a_bad_duration(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--lifetime sets the expiry; a malformed duration is one error line, exit 1."""
    status, _, err = _run(
        capsys, "clients", "create", "app", "--lifetime", "2d", "-m", str(manifest)
    )
    assert status == 0
    assert "expires" in err
    status, out, err = _run(
        capsys, "clients", "create", "app", "--lifetime", "2x", "-m", str(manifest)
    )
    assert status == 1
    assert out == ""
    assert err.startswith("interlock: error[invalid_request]: '2x' is not a duration")
    assert len(err.strip().splitlines()) == 1


def test_rotate_secret_prints_the_new_secret_and_the_old_one_works_within_the_overlap(
    manifest: Path, secrets: ClientSecrets, capsys: pytest.CaptureFixture[str]
) -> None:
    """The new secret is on stdout once; stderr says until when the previous stays valid."""
    _, old, _ = _run(capsys, "clients", "create", "app", "-m", str(manifest))
    status, out, err = _run(
        capsys, "clients", "rotate-secret", "app", "--overlap", "2h", "-m", str(manifest)
    )
    assert status == 0
    new = out.strip()
    assert out == f"{new}\n"
    assert new != old.strip()
    assert new not in err
    assert old.strip() not in err
    assert "stays valid until" in err
    assert _works(secrets, old.strip())
    assert _works(secrets, new)
    assert len(_listed(capsys, manifest)["app"]["secrets"]) == 2


def test_rotate_secret_twice_is_refused_while_the_previous_secret_is_valid(
    manifest: Path, secrets: ClientSecrets, capsys: pytest.CaptureFixture[str]
) -> None:
    """The second rotation would end a still-valid secret silently: one error line instead."""
    _, old, _ = _run(capsys, "clients", "create", "app", "-m", str(manifest))
    _, new, _ = _run(capsys, "clients", "rotate-secret", "app", "-m", str(manifest))
    status, out, err = _run(capsys, "clients", "rotate-secret", "app", "-m", str(manifest))
    assert (status, out) == (1, "")
    assert err.startswith("interlock: error[invalid_request]: client 'app' already has 2 active")
    assert "revoke-secret" in err
    assert _works(secrets, old.strip())
    assert _works(secrets, new.strip())


def test_create_with_a_public_key_registers_it_and_prints_its_kid(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PEM and a JWK file both work; the kid is the RFC 7638 thumbprint; list shows both."""
    ec = ECKey.generate_key("P-256", private=True)
    pem = tmp_path / "client.pem"
    pem.write_bytes(ec.as_pem(private=False))
    ed = OKPKey.generate_key("Ed25519", private=True)
    jwk = tmp_path / "client.jwk"
    jwk.write_text(json.dumps(ed.as_dict(private=False)))
    status, out, _ = _run(
        capsys, "clients", "create", "app", "--public-key", str(pem), "-m", str(manifest)
    )
    assert (status, out) == (0, f"{ec.thumbprint()}\n")
    status, out, _ = _run(
        capsys,
        "clients",
        "create",
        "app",
        "--public-key",
        str(jwk),
        "--lifetime",
        "30d",
        "-m",
        str(manifest),
    )
    assert (status, out) == (0, f"{ed.thumbprint()}\n")
    keys = {k["kid"]: k for k in _listed(capsys, manifest)["app"]["keys"]}
    assert keys[ec.thumbprint()]["alg"] == "ES256"
    assert keys[ec.thumbprint()]["expires_at"] is None
    assert keys[ed.thumbprint()]["alg"] == "Ed25519"
    assert keys[ed.thumbprint()]["expires_at"] is not None


def test_a_private_key_file_is_refused_without_echoing_it(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A private JWK or PEM: one error line, exit 1, no key material, nothing registered."""
    key = ECKey.generate_key("P-256", private=True)
    private_jwk = tmp_path / "private.jwk"
    private_jwk.write_text(json.dumps(key.as_dict(private=True)))
    private_pem = tmp_path / "private.pem"
    private_pem.write_bytes(key.as_pem(private=True))
    for path in (private_jwk, private_pem):
        status, out, err = _run(
            capsys, "clients", "create", "app", "--public-key", str(path), "-m", str(manifest)
        )
        assert status == 1
        assert out == ""
        assert err.startswith("interlock: error[invalid_request]: ")
        assert len(err.strip().splitlines()) == 1
        assert str(key.as_dict(private=True)["d"]) not in err
        assert "Traceback" not in err
    assert _listed(capsys, manifest)["app"]["keys"] == []


def test_unreadable_or_foreign_key_files_are_one_line_errors(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing file, a key set, text that is neither JSON nor PEM."""
    key_set = tmp_path / "set.json"
    key_set.write_text(json.dumps({"keys": []}))
    junk = tmp_path / "junk.txt"
    junk.write_text("hello")
    for path, message in (
        (tmp_path / "missing.jwk", "cannot read"),
        (key_set, "is a key set"),
        (junk, "neither a JWK"),
    ):
        status, _, err = _run(
            capsys, "clients", "create", "app", "--public-key", str(path), "-m", str(manifest)
        )
        assert status == 1
        assert message in err
        assert len(err.strip().splitlines()) == 1


def test_revoke_key_takes_a_kid(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The key leaves the list; an unknown kid is not_found, exit 1."""
    key = ECKey.generate_key("P-256", private=True)
    path = tmp_path / "client.jwk"
    path.write_text(json.dumps(key.as_dict(private=False)))
    _, kid, _ = _run(
        capsys, "clients", "create", "app", "--public-key", str(path), "-m", str(manifest)
    )
    # A thumbprint may start with "-": "--" ends the options, as for any command line.
    status, out, _ = _run(capsys, "clients", "revoke-key", "-m", str(manifest), "--", kid.strip())
    assert status == 0
    assert out == f"revoked key {kid.strip()} (client app)\n"
    assert _listed(capsys, manifest)["app"]["keys"] == []
    status, _, err = _run(capsys, "clients", "revoke-key", "nope", "-m", str(manifest))
    assert status == 1
    assert err.startswith("interlock: error[not_found]: ")


def test_revoke_client_stops_every_secret_and_key_and_says_what_it_ended(
    manifest: Path, tmp_path: Path, secrets: ClientSecrets, capsys: pytest.CaptureFixture[str]
) -> None:
    """All credentials and issued tokens go at once; the output counts each kind."""
    _, first, _ = _run(capsys, "clients", "create", "app", "-m", str(manifest))
    _, second, _ = _run(capsys, "clients", "create", "app", "-m", str(manifest))
    path = tmp_path / "client.jwk"
    path.write_text(json.dumps(ECKey.generate_key("P-256", private=True).as_dict(private=False)))
    _run(capsys, "clients", "create", "app", "--public-key", str(path), "-m", str(manifest))
    _run(capsys, "signature-keys", "create", "app", "--hmac", "-m", str(manifest))
    status, out, _ = _run(capsys, "clients", "revoke", "app", "-m", str(manifest))
    assert status == 0
    for line in (
        "ended for client app:",
        "client secrets         2",
        "private_key_jwt keys   1",
        "API keys               0",
        "signature keys         1",
        "certificates (on CRL)  0",
        "access tokens          every one issued up to ",
        "vault grants           0",
    ):
        assert line in out
    assert not _works(secrets, first.strip())
    assert not _works(secrets, second.strip())
    listed = _listed(capsys, manifest)["app"]
    assert (listed["secrets"], listed["keys"]) == ([], [])
    status, _, err = _run(capsys, "clients", "revoke", "ghost", "-m", str(manifest))
    assert status == 1
    assert err.startswith("interlock: error[not_found]: ")


def test_list_shows_every_manifest_client_as_a_table_and_as_json(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Auth methods, roles, scopes and active secret ids; never a secret; unknown client fails."""
    _, secret, err = _run(capsys, "clients", "create", "app", "-m", str(manifest))
    secret_id = err.split()[2]
    status, out, _ = _run(capsys, "clients", "list", "-m", str(manifest))
    assert status == 0
    for expected in (
        "OAuth clients",
        "app",
        "legacy",
        "oauth2",
        "api_key",
        "orders.read",
        secret_id,
    ):
        assert expected in out
    assert secret.strip() not in out
    listed = _listed(capsys, manifest)
    assert listed["app"]["auth"] == ["oauth2", "mtls"]
    assert listed["app"]["roles"] == ["reader"]
    assert listed["app"]["scopes"] == ["orders.read"]
    assert [s["id"] for s in listed["app"]["secrets"]] == [secret_id]
    assert listed["legacy"]["secrets"] == []
    status, out, _ = _run(capsys, "clients", "list", "app", "--json", "-m", str(manifest))
    assert [c["client"] for c in json.loads(out)["clients"]] == ["app"]
    status, _, err = _run(capsys, "clients", "list", "ghost", "-m", str(manifest))
    assert status == 1
    assert err.startswith("interlock: error[not_found]: ")


def test_clients_without_oauth2_get_no_secret(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An api_key-only client is refused with one line and exit 1."""
    status, out, err = _run(capsys, "clients", "create", "legacy", "-m", str(manifest))
    assert (status, out) == (1, "")
    assert err == "interlock: error[invalid_request]: client 'legacy' may not use OAuth 2.0\n"


def test_secrets_grant_refuses_a_client_that_is_not_in_the_manifest(
    manifest: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A grant to a misspelt or unknown client would wait for anyone later given that name."""
    monkeypatch.setenv("INTERLOCK_MANIFEST", str(manifest))
    status, out, err = _run(capsys, "secrets", "grant", "ghost", "erp/*", "read")
    assert (status, out) == (1, "")
    assert err == "interlock: error[not_found]: no client 'ghost' in the manifest\n"
    status, out, _ = _run(capsys, "secrets", "grants")
    assert (status, out) == (0, "")
    status, out, _ = _run(capsys, "secrets", "grant", "app", "erp/*", "read", "-m", str(manifest))
    assert (status, out) == (0, "app may read erp/*\n")
