"""A deployment whose KEK is in an HSM: init, open, rotation with rewrap, wrong backend."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from interlock.config.settings import Settings
from interlock.crypto import inspect_unverified, needs_rewrap
from interlock.errors import ConfigError, KeyringError
from interlock.store import initialise, open_deployment, rewrap_all
from interlock.store.sealed import SealedColumn
from interlock.tables import sealed_columns
from interlock.testing.softhsm import SoftHsm

TOKEN = "interlock-b"

_items = sa.Table(
    "test_hsm_sealed_items",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
)


def _settings(tmp_path: Path, softhsm: SoftHsm, **extra: object) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        kek_backend="pkcs11",
        pkcs11_module=softhsm.module,
        pkcs11_token_label=TOKEN,
        pkcs11_pin_file=softhsm.pin_file(TOKEN),
        **extra,  # type: ignore[arg-type]
    )


def test_hsm_rotation_then_rewrap_moves_every_sealed_value(
    tmp_path: Path, softhsm: SoftHsm
) -> None:
    """Old blobs open after rotation and before rewrap; rewrap_all moves all to the new KEK."""
    settings = _settings(tmp_path, softhsm)
    deployment = initialise(settings)
    keyring = deployment.keyring
    assert keyring.backend == "pkcs11"
    assert not settings.keyring_path.exists()  # no key material in the data directory
    ref = settings.keyring_ref_path
    assert stat.S_IMODE(ref.stat().st_mode) == 0o600
    assert keyring.keyring_id in ref.read_text()
    _items.create(deployment.engine)
    with deployment.engine.begin() as connection:
        connection.execute(
            _items.insert(),
            [
                {"id": i, "value": keyring.seal(f"v{i}".encode(), f"item/{i}".encode())}
                for i in range(5)
            ],
        )

    assert keyring.rotate() == 2
    with deployment.engine.connect() as connection:
        before = connection.execute(sa.select(_items)).all()
    for i, blob in before:  # still under version 1, and still open
        assert inspect_unverified(blob).kek_version == 1
        assert keyring.open(blob, f"item/{i}".encode()) == f"v{i}".encode()

    columns = (*sealed_columns(), SealedColumn(_items, "value"))
    report = rewrap_all(deployment.engine, keyring, columns)
    assert report.rewrapped == report.examined >= 6  # five items and the deployment canary
    with deployment.engine.connect() as connection:
        after = connection.execute(sa.select(_items)).all()
    for i, blob in after:
        assert not needs_rewrap(keyring, blob)
        assert keyring.open(blob, f"item/{i}".encode()) == f"v{i}".encode()
    deployment.close()

    reopened = open_deployment(settings)  # the canary, re-wrapped, still proves the binding
    try:
        assert (reopened.keyring.keyring_id, reopened.keyring.versions) == (
            keyring.keyring_id,
            (1, 2),
        )
    finally:
        reopened.close()


def test_the_other_backend_is_refused_with_the_setting_to_change(
    tmp_path: Path, softhsm: SoftHsm
) -> None:
    """A file deployment opened as pkcs11 (and back) fails closed and names the setting."""
    file_settings = Settings(data_dir=tmp_path / "data")
    initialise(file_settings).close()
    with pytest.raises(ConfigError, match=r"KEK is in a file .* INTERLOCK_KEK_BACKEND=pkcs11"):
        open_deployment(_settings(tmp_path, softhsm))
    hsm_settings = _settings(tmp_path / "hsm", softhsm)
    initialise(hsm_settings).close()
    with pytest.raises(ConfigError, match="KEK is in an HSM"):
        open_deployment(Settings(data_dir=tmp_path / "hsm" / "data"))


def test_a_wrong_pin_at_start_fails_closed(tmp_path: Path, softhsm: SoftHsm) -> None:
    """init with a PIN the token refuses leaves no data directory state behind."""
    wrong = tmp_path / "wrong.pin"
    wrong.write_text("0000")
    wrong.chmod(0o600)
    settings = Settings(
        data_dir=tmp_path / "data",
        kek_backend="pkcs11",
        pkcs11_module=softhsm.module,
        pkcs11_token_label="interlock-spare",
        pkcs11_pin_file=wrong,
    )
    with pytest.raises(KeyringError, match="refused the PIN"):
        initialise(settings)
    assert not settings.keyring_ref_path.exists()


def test_pkcs11_settings_are_all_required() -> None:
    """kek_backend=pkcs11 without its module, token or PIN file is a settings error."""
    from interlock.config.settings import load_settings

    with pytest.raises(ConfigError, match="INTERLOCK_PKCS11_MODULE"):
        load_settings(kek_backend="pkcs11")
