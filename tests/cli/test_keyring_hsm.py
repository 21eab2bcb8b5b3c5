"""`interlock init`, `keyring status|rotate` and the vault with the KEK in an HSM (SoftHSM2)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from interlock.cli.main import main
from interlock.testing.softhsm import SoftHsm
from tests.conftest import isolate_cli

TOKEN = "interlock-b"


def test_init_rotate_and_a_secret_round_trip_with_the_hsm(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    softhsm: SoftHsm,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The whole CLI path: init binds an HSM keyring; rotate re-wraps; the secret still reads."""
    isolate_cli(
        monkeypatch,
        tmp_path,
        KEK_BACKEND="pkcs11",
        PKCS11_MODULE=str(softhsm.module),
        PKCS11_TOKEN_LABEL=TOKEN,
        PKCS11_PIN_FILE=str(softhsm.pin_file(TOKEN)),
        AUDIT_TIMEOUT_SECONDS="30",  # SoftHSM2 stores keys slowly on a busy machine
    )
    assert main(["init"]) == 0
    out = capsys.readouterr().out
    assert f"pkcs11 token '{TOKEN}'" in out
    assert not (tmp_path / "data" / "keyring.json").exists()

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"s3cret-value")))
    assert main(["secrets", "put", "erp/api-key"]) == 0

    assert main(["keyring", "rotate"]) == 0
    out = capsys.readouterr().out
    assert "KEK version 2 is now current" in out
    rewrapped, examined = out.split("re-wrapped ")[1].split(" sealed values")[0].split(" of ")
    assert rewrapped == examined

    assert main(["keyring", "status"]) == 0
    out = capsys.readouterr().out
    assert f"backend   pkcs11 token '{TOKEN}'" in out
    assert "versions  1, 2" in out
    assert "current   2" in out
    pin = softhsm.pin_file(TOKEN).read_text().strip()
    assert pin not in out

    assert main(["secrets", "get", "erp/api-key", "--reveal"]) == 0
    assert capsys.readouterr().out == "s3cret-value"

    assert main(["keyring", "rewrap"]) == 0
    assert "re-wrapped 0 of" in capsys.readouterr().out


def test_a_missing_token_is_one_error_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    softhsm: SoftHsm,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The CLI prints one `error[keyring_error]` line naming the setting, exit 1."""
    isolate_cli(
        monkeypatch,
        tmp_path,
        KEK_BACKEND="pkcs11",
        PKCS11_MODULE=str(softhsm.module),
        PKCS11_TOKEN_LABEL="absent-token",
        PKCS11_PIN_FILE=str(softhsm.pin_file(TOKEN)),
    )
    assert main(["init"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("interlock: error[keyring_error]: no token labelled 'absent-token'")
    assert "INTERLOCK_PKCS11_TOKEN_LABEL" in err
    assert len(err.splitlines()) == 1
