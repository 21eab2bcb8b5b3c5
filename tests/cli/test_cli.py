"""The `interlock` command: one-line errors, exit codes, and each sub-command."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from interlock.cli.main import main
from tests.conftest import isolate_cli

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "interlock.yaml"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test gets its own data directory and no inherited INTERLOCK_* settings."""
    isolate_cli(monkeypatch, tmp_path)


def test_validate_example_prints_ok(capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped example is valid."""
    assert main(["validate", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out.strip().endswith("OK")


def test_validate_prints_every_located_error_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Errors come one per line as FILE:LINE:COL: path: message, then a count on stderr."""
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "version: 1\n"
        "systems:\n"
        "  erp: {url: 'http://erp.internal', location: DE, verify: false}\n"
        "roles: {}\n"
        "clients: {}\n"
        "integrations: {}\n"
    )
    assert main(["validate", str(manifest)]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) >= 2
    assert all(line.startswith(f"{manifest}:3:") for line in lines)
    assert "systems.erp" in out
    assert "error" in err


def test_validate_missing_file_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that does not exist is reported, not a traceback."""
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert "nope.yaml" in captured.out + captured.err


def test_init_creates_private_files_and_refuses_a_second_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """init makes 0700/0600 files; a repeat prints one error line with its code, exit 1."""
    assert main(["init"]) == 0
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "keyring.json").stat().st_mode) == 0o600
    capsys.readouterr()
    assert main(["init"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("interlock: error[already_initialised]: ")
    assert len(err.strip().splitlines()) == 1


def test_debug_flag_shows_the_traceback(tmp_path: Path) -> None:
    """With --debug the exception propagates (and so its traceback is printed)."""
    from interlock.errors import NotInitialisedError

    with pytest.raises(NotInitialisedError):
        main(["--debug", "keyring", "status"])


def test_keyring_rotate_and_status(capsys: pytest.CaptureFixture[str]) -> None:
    """rotate adds version 2 and re-wraps stored data keys; status shows no key material."""
    assert main(["init"]) == 0
    assert main(["keyring", "rotate"]) == 0
    out = capsys.readouterr().out
    assert "KEK version 2 is now current" in out
    assert "re-wrapped 3 of 3 sealed values" in out  # deployment canary, root and issuing CA keys
    assert main(["keyring", "status"]) == 0
    out = capsys.readouterr().out
    assert "versions  1, 2" in out
    assert "current   2" in out


def test_data_dir_option_overrides_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--data-dir wins over INTERLOCK_DATA_DIR."""
    assert main(["--data-dir", str(tmp_path / "elsewhere"), "init"]) == 0
    assert (tmp_path / "elsewhere" / "keyring.json").exists()
    assert not (tmp_path / "data").exists()


def test_demo_walks_through_allowed_and_refused_calls(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The demo starts a sample ERP and the gateway and shows each outcome, then exits.

    Its privacy walkthrough traces the customer of order 1001, exports and erases her
    data through the ERP's signed webhook and verifies the erasure's receipt.
    """
    assert main(["demo", str(EXAMPLE), "--once", "--port", "0"]) == 0
    out = capsys.readouterr().out
    for expected in (
        "Systems",
        "Integrations",
        "Routes",
        "GET    │ /orders/{id}",
        "allowed read",
        "200",
        "403 this route requires the scope 'crm.accounts.write'",
        "401 this route requires a credential",
        "404 no route matches this path",
        "400 credentials are not accepted in the query string",
        "old key in its overlap",
        "revoked key",
        "GDPR register (Art. 30)",
        "the full register, printable:",
        "Security checklist (interlock check)",
    ):
        assert expected in out
    register = out.split("GDPR register (Art. 30)", 1)[1].split("the full register", 1)[0]
    for integration in ("order-sync", "analytics-feed"):
        assert integration in register
    revoked = out.split("revoked key\n", 1)[1]
    assert "401 the API key is missing, invalid, expired or revoked" in revoked
    sdk = out.split("SDK: client credentials + DPoP\n", 1)[1]
    assert sdk.splitlines()[1].strip().startswith("200 ")
    stolen = out.split("the same token, stolen and sent without the key\n", 1)[1]
    assert "401 this access token is DPoP-bound" in stolen
    assert "ilk_" not in out.replace("ilk_…", "").replace("api_key=ilk_x", "")
    assert "ilcs_" not in out
    # Data-subject rights (issue 20): trace, export, erasure through the ERP's
    # webhook, and the erasure's receipt verified offline.
    privacy = out.split("-- data-subject rights", 1)[1]
    assert "crm   (US) " in privacy.split("export  POST", 1)[0]  # the trace found the CRM
    assert "from erp via order-sync" in privacy
    assert privacy.count("closed completed: crm not_found, erp done") == 2
    assert "erp   done, 2 record(s)" in privacy  # the customer and her order, exported
    assert "GET /orders/1001 after the erasure: 404" in privacy
    assert "trace again: 0 system(s)" in privacy
    assert "receipt  verified offline: erase dsr_" in privacy
    # --once: the curl lines a serving demo prints, said to need one; a given data dir stays.
    after = out.split("Try it while `interlock demo` serves (without --once)", 1)[1]
    assert "  curl --cacert " in after
    assert "/orders/1001" in after
    assert "kept the data directory" in after
    assert "(given with --data-dir or INTERLOCK_DATA_DIR)" in after


def test_migrate_runs_on_an_initialised_deployment(capsys: pytest.CaptureFixture[str]) -> None:
    """migrate reports the schema revision."""
    assert main(["init"]) == 0
    assert main(["migrate"]) == 0
    assert "store at schema" in capsys.readouterr().out


def test_unexpected_errors_print_only_their_type(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unplanned exception's text (which might hold data) is not printed; exit 70."""
    from interlock.cli import setup

    def explode(*_: object) -> None:
        raise RuntimeError("secret-material-in-message")

    monkeypatch.setattr(setup, "initialise", explode)
    assert main(["init"]) == 70
    err = capsys.readouterr().err
    assert "RuntimeError" in err
    assert "secret-material" not in err


@pytest.mark.processes
def test_python_dash_m_runs_the_cli() -> None:
    """`python -m interlock` is the same program as the console script."""
    result = subprocess.run(
        [sys.executable, "-m", "interlock", "version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("interlock ")


def test_oauth_rotate_keys_publishes_a_second_key(capsys: pytest.CaptureFixture[str]) -> None:
    """rotate-keys adds a key that is published before it signs."""
    import json

    assert main(["init"]) == 0
    assert main(["oauth", "rotate-keys"]) == 0
    assert "starts signing in" in capsys.readouterr().out
    assert main(["oauth", "jwks"]) == 0
    keys = json.loads(capsys.readouterr().out)["keys"]
    assert len(keys) == 2
    assert all("d" not in key for key in keys)


def test_clients_create_and_revoke_secret(capsys: pytest.CaptureFixture[str]) -> None:
    """The secret goes to stdout alone (once); revoke takes its id."""
    manifest = EXAMPLE  # order-sync's auth includes oauth2
    assert main(["init"]) == 0
    capsys.readouterr()
    assert main(["clients", "create-secret", "order-sync", "--manifest", str(manifest)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("ilcs_")
    secret_id = captured.err.split()[2]
    assert main(["clients", "revoke-secret", secret_id, "--manifest", str(manifest)]) == 0
    assert f"revoked client secret {secret_id}" in capsys.readouterr().out


def test_oauth_token_prints_a_verifiable_token(capsys: pytest.CaptureFixture[str]) -> None:
    """The operator's test token verifies against the published keys for the given issuer."""
    from interlock.config.loader import load_manifest
    from interlock.config.settings import load_settings
    from interlock.oauth.signing_keys import SigningKeys
    from interlock.oauth.tokens import AccessTokenVerifier
    from interlock.store import open_deployment

    assert main(["init"]) == 0
    capsys.readouterr()
    issuer = "https://gw.example:8443"
    args = ["oauth", "token", "order-sync", "--issuer", issuer, "--scope", "orders.read"]
    assert main([*args, "--manifest", str(EXAMPLE)]) == 0
    token = capsys.readouterr().out.strip()
    deployment = open_deployment(load_settings())
    try:
        keys = SigningKeys(deployment.engine, deployment.keyring)
        verifier = AccessTokenVerifier(keys, issuer, load_manifest(EXAMPLE))
        principal = verifier.verify(token)
    finally:
        deployment.close()
    assert principal.client == "order-sync"
    assert principal.scopes == frozenset({"orders.read"})


def _claims(token: str) -> dict[str, object]:
    import base64
    import json

    payload = token.split(".")[1]
    claims: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return claims


def test_oauth_token_is_issued_by_the_configured_public_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The gateway's issuer is INTERLOCK_PUBLIC_URL, so the operator's token is for it too."""
    monkeypatch.setenv("INTERLOCK_PUBLIC_URL", "https://gw.example:9443")
    assert main(["init"]) == 0
    capsys.readouterr()
    args = ["oauth", "token", "order-sync", "--scope", "orders.read", "-m", str(EXAMPLE)]
    assert main(args) == 0
    captured = capsys.readouterr()
    claims = _claims(captured.out.strip())
    assert (claims["iss"], claims["aud"]) == ("https://gw.example:9443", "https://gw.example:9443")
    assert "issuer https://gw.example:9443" in captured.err


def test_oauth_token_without_a_public_url_says_which_issuer_it_assumed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No configured URL: serve's default listener, named on stderr with how to change it."""
    assert main(["init"]) == 0
    capsys.readouterr()
    args = ["oauth", "token", "order-sync", "--scope", "orders.read", "-m", str(EXAMPLE)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert _claims(captured.out.strip())["iss"] == "https://127.0.0.1:8443"
    assert "INTERLOCK_PUBLIC_URL" in captured.err
