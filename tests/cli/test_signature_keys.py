"""`interlock signature-keys`: register a public key, generate an HMAC secret, list, revoke."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from joserfc.jwk import ECKey, OKPKey

from interlock.config.loader import load_manifest
from interlock.config.settings import load_settings
from interlock.identity.client_keys import ClientKeys
from interlock.store import open_deployment
from tests.cli.test_clients import _isolated, _run, manifest

__all__ = ["_isolated", "manifest"]


@contextmanager
def _keys(manifest: Path) -> Iterator[ClientKeys]:
    deployment = open_deployment(load_settings())
    try:
        yield ClientKeys(deployment.engine, deployment.keyring, load_manifest(manifest))
    finally:
        deployment.close()


def test_a_public_key_is_registered_and_its_keyid_printed(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = OKPKey.generate_key("Ed25519", private=True)
    pem = tmp_path / "partner.pub.pem"
    pem.write_bytes(key.as_pem(private=False))
    status, out, err = _run(
        capsys, "signature-keys", "create", "legacy", "--public-key", str(pem), "-m", str(manifest)
    )
    assert status == 0, err
    keyid = out.strip()
    assert keyid == key.thumbprint()
    with _keys(manifest) as keys:
        resolved = keys.resolve(keyid)
    assert resolved is not None
    assert (resolved.client, resolved.alg) == ("legacy", "ed25519")


def test_an_hmac_secret_is_printed_once_on_stdout_only(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(
        capsys,
        "signature-keys",
        "create",
        "app",
        "--hmac",
        "--lifetime",
        "30d",
        "-m",
        str(manifest),
    )
    assert status == 0, err
    secret = out.strip()
    assert out == f"{secret}\n"
    assert len(base64.b64decode(secret)) == 32
    assert secret not in err
    assert "shown once" in err
    keyid = err.split()[2]
    with _keys(manifest) as keys:
        resolved = keys.resolve(keyid)
    assert resolved is not None
    assert resolved.key == base64.b64decode(secret)
    status, out, _ = _run(capsys, "signature-keys", "list", "-m", str(manifest))
    assert status == 0
    assert keyid in out
    assert secret not in out
    assert "hmac-sha256" in out


def test_revoke_takes_the_key_out_of_service(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, err = _run(capsys, "signature-keys", "create", "app", "--hmac", "-m", str(manifest))
    keyid = err.split()[2]
    status, out, _ = _run(capsys, "signature-keys", "revoke", keyid, "-m", str(manifest))
    assert status == 0
    assert f"revoked signature key {keyid} (client app)" in out
    with _keys(manifest) as keys:
        assert keys.resolve(keyid) is None
    _, out, _ = _run(capsys, "signature-keys", "list", "app", "-m", str(manifest))
    assert "revoked" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "app"], "give exactly one of --public-key FILE and --hmac"),
        (["create", "nobody", "--hmac"], "no client 'nobody' in the manifest"),
        (["revoke", "no-such-key"], "no signature key 'no-such-key'"),
    ],
)
def test_bad_input_is_one_line(
    manifest: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    status, out, err = _run(capsys, "signature-keys", *args, "-m", str(manifest))
    assert status == 1
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_a_private_key_or_another_curve_is_refused(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private = tmp_path / "private.pem"
    private.write_bytes(OKPKey.generate_key("Ed25519", private=True).as_pem(private=True))
    status, _, err = _run(
        capsys, "signature-keys", "create", "app", "--public-key", str(private), "-m", str(manifest)
    )
    assert status == 1
    assert "private key" in err
    assert "PRIVATE KEY" not in err
    p384 = tmp_path / "p384.pem"
    p384.write_bytes(ECKey.generate_key("P-384", private=True).as_pem(private=False))
    status, _, err = _run(
        capsys, "signature-keys", "create", "app", "--public-key", str(p384), "-m", str(manifest)
    )
    assert status == 1
    assert "P-384" in err or "curve" in err
