"""No command prints, logs or records a credential given to it on the command line.

An argument that is one of our credential formats (an API key, a client
secret, a JWT, a PEM private key) is recognised before anything is recorded;
`keys revoke` and `clients revoke-secret` take a full key or secret as a way to
name it and act on its id; every other command refuses it without echoing it.
The audit trail is append-only, so a secret that reaches it stays there forever.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from interlock.cli.evidence import RECORDED
from interlock.credentials.keyformat import new_key
from interlock.crypto.pkix import new_private_key, private_key_pem
from interlock.identity.client_secrets import new_client_secret
from tests.cli.test_clients import _isolated, _run, manifest
from tests.cli.test_evidence import _entries

__all__ = ["_isolated", "manifest"]


def _jwt() -> str:
    key = ECKey.generate_key("P-256", private=True)
    claims = {"iss": "https://gw.example", "sub": "app", "client_id": "app", "jti": "j1"}
    return jws.serialize_compact(
        {"alg": "ES256", "typ": "at+jwt", "kid": "k1"},
        json.dumps(claims).encode(),
        key,
        algorithms=["ES256"],
    )


def _credentials() -> dict[str, str]:
    return {
        "api key": new_key()[0],
        "client secret": new_client_secret()[0],
        "jwt": _jwt(),
        "pem key": private_key_pem(new_private_key()).decode(),
    }


def _secret_parts(credential: str) -> list[str]:
    """What must never appear: the whole credential and its secret part."""
    if credential.startswith("-----BEGIN"):
        body = [line for line in credential.splitlines() if line and "-----" not in line]
        return [credential, *body]
    if credential.startswith("eyJ"):
        return [credential, credential.rsplit(".", 1)[1]]
    return [credential, credential.rsplit("_", 1)[1]]


def _assert_nowhere(credential: str, *texts: str) -> None:
    recorded = json.dumps(_entries())
    for part in _secret_parts(credential):
        for text in (*texts, recorded):
            assert part not in text


def test_keys_revoke_takes_the_full_key_revokes_it_and_never_echoes_or_records_it(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The live-key-in-the-audit-log defect: the key names itself; only its id is shown."""
    status, token, _ = _run(capsys, "keys", "create", "legacy", "-m", str(manifest))
    assert status == 0
    token = token.strip()
    key_id = token.split("_")[1]
    status, out, err = _run(capsys, "keys", "revoke", token, "-m", str(manifest))
    assert (status, err) == (0, "")
    assert out == f"revoked {key_id} (client legacy)\n"
    _, listed, _ = _run(capsys, "keys", "list", "-m", str(manifest))
    assert "revoked" in listed
    _assert_nowhere(token, out, err)
    (entry,) = [e for e in _entries() if e["action"] == "admin.keys.revoke"]
    assert entry["details"]["command"] == f"keys revoke {key_id} -m {manifest}"


def test_a_mistyped_key_is_not_echoed_in_the_error(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key whose checksum fails is still mostly a secret: the error does not repeat it."""
    _, token, _ = _run(capsys, "keys", "create", "legacy", "-m", str(manifest))
    typo = token.strip()[:-1] + ("A" if token.strip()[-1] != "A" else "B")
    status, out, err = _run(capsys, "keys", "revoke", typo, "-m", str(manifest))
    assert status == 1
    assert err.startswith("interlock: error[invalid_request]: not a key id, nor an API key")
    _assert_nowhere(typo, out, err)


@pytest.mark.parametrize(("group", "command"), sorted(RECORDED))
def test_no_admin_command_prints_or_records_a_credential_given_as_an_argument(
    manifest: Path, capsys: pytest.CaptureFixture[str], group: str, command: str
) -> None:
    """Every recorded command, given every credential format: refused, masked, on record."""
    credentials = _credentials()
    status, out, err = _run(capsys, group, command, *credentials.values(), "-m", str(manifest))
    assert status == 1
    assert err.startswith("interlock: error[credential_in_argument]: ")
    for credential in credentials.values():
        _assert_nowhere(credential, out, err)
    (entry,) = [e for e in _entries() if e["action"] == f"admin.{group}.{command}"]
    assert entry["outcome"]["result"] == "failure"
    assert "[REDACTED]" in entry["details"]["command"]


def test_clients_revoke_secret_takes_the_full_secret_and_shows_only_its_id(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A client secret names itself for revoke-secret, as a key does for keys revoke."""
    _, secret, err = _run(capsys, "clients", "create", "app", "-m", str(manifest))
    secret = secret.strip()
    secret_id = err.split()[2]
    status, out, err = _run(capsys, "clients", "revoke-secret", secret, "-m", str(manifest))
    assert (status, out, err) == (0, f"revoked client secret {secret_id}\n", "")
    _assert_nowhere(secret, out, err)


def test_keys_rotate_takes_the_full_key(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """keys rotate names the old key by the key too; the new key alone is printed, once."""
    _, token, _ = _run(capsys, "keys", "create", "legacy", "-m", str(manifest))
    token = token.strip()
    status, out, err = _run(capsys, "keys", "rotate", token, "-m", str(manifest))
    assert status == 0
    assert token.split("_")[1] in err
    assert out.strip() != token
    _assert_nowhere(token, out, err)


def test_the_recorded_command_line_names_keys_by_id_and_masks_other_credentials() -> None:
    """admin_action masks on its own, whoever calls it (the evidence module's last check)."""
    from interlock.cli.evidence import admin_action

    credentials = _credentials()
    key = credentials["api key"]
    found = admin_action(["keys", "revoke", key, "--note", credentials["jwt"]])
    assert found == ("admin.keys.revoke", f"keys revoke {key.split('_')[1]} --note [REDACTED]")
