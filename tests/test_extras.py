"""A feature whose extra is not installed fails with one line naming the extra.

``pip install interlock[server]`` leaves out PostgreSQL (``[postgres]``) and the
HSM keyring (``[hsm]``); configuring either without it must say which extra to
install, not raise a bare ImportError from deep inside a driver.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from interlock.config.settings import Settings
from interlock.errors import ConfigError, MissingExtraError
from interlock.secrets.rotators import build
from interlock.store import initialise
from interlock.store.engine import create_store_engine


def _without(monkeypatch: pytest.MonkeyPatch, package: str, user: str) -> None:
    """Make ``package`` unimportable, as in an install without its extra, and forget
    ``user``, the module of ours that imports it, so that it is imported afresh."""
    for name in list(sys.modules):
        if name.startswith(f"{package}."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, package, None)
    monkeypatch.delitem(sys.modules, user, raising=False)


def test_a_postgresql_url_without_the_driver_names_the_postgres_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The store refuses with MissingExtraError (a ConfigError), naming psycopg and the extra."""
    _without(monkeypatch, "psycopg", "sqlalchemy.dialects.postgresql.psycopg")
    with pytest.raises(MissingExtraError) as raised:
        create_store_engine("postgresql://interlock@db.internal/interlock")
    assert isinstance(raised.value, ConfigError)
    assert raised.value.code == "missing_extra"
    assert str(raised.value) == (
        "a PostgreSQL database URL needs the postgres extra (psycopg is not installed): "
        "pip install 'interlock[postgres]'"
    )


def test_the_postgresql_rotator_without_the_driver_names_the_postgres_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rotators load on first use; a missing driver is the extra's absence, said so."""
    _without(monkeypatch, "psycopg", "interlock.secrets.rotators.postgresql")
    with pytest.raises(MissingExtraError, match=r"the postgresql rotator needs the postgres extra"):
        build("postgresql", {}, None)  # type: ignore[arg-type]


def test_an_hsm_keyring_without_python_pkcs11_names_the_hsm_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``INTERLOCK_KEK_BACKEND=pkcs11`` without python-pkcs11: one line, nothing created."""
    _without(monkeypatch, "pkcs11", "interlock.crypto.pkcs11_kek")
    pin = tmp_path / "pin"
    pin.write_text("1234")
    pin.chmod(0o600)
    settings = Settings(
        data_dir=tmp_path / "data",
        kek_backend="pkcs11",
        pkcs11_module=tmp_path / "libsofthsm2.so",
        pkcs11_token_label="interlock",
        pkcs11_pin_file=pin,
    )
    with pytest.raises(MissingExtraError, match=r"pip install 'interlock\[hsm\]'"):
        initialise(settings)
    assert not (tmp_path / "data" / "interlock.db").exists()
