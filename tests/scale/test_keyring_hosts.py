"""File keyrings on several hosts: a missing KEK version is named with its fix, and moved sealed.

Two data directories (two hosts) share one store; host B's keyring file is a
copy of host A's taken at set-up, as a deployment would ship it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import pytest

from interlock.actors import Operator
from interlock.audit.sink import MemorySink
from interlock.cli.main import main
from interlock.config.settings import Settings
from interlock.crypto import Keyring, keyfile
from interlock.crypto.kek_transport import KekExport, new_passphrase, seal_export
from interlock.errors import DecryptionError, KeyringError, UnknownKeyVersionError
from interlock.secrets.vault import Vault
from interlock.store import initialise, open_deployment
from tests.conftest import isolate_cli

ADMIN = Operator("admin:test")


def _copy_keyring(source: Path, target_dir: Path) -> Path:
    target_dir.mkdir(mode=0o700)
    target = target_dir / "keyring.json"
    shutil.copy2(source, target)
    target.chmod(0o600)
    return target


@pytest.fixture
def hosts(tmp_path: Path) -> tuple[Keyring, Keyring]:
    """Keyring A and a copy of it, B (one deployment, two hosts)."""
    first = Keyring.create(tmp_path / "a.json")
    copy = _copy_keyring(tmp_path / "a.json", tmp_path / "b")
    return first, Keyring.load(copy)


def test_a_rotated_version_moves_sealed_and_opens_on_the_other_host(
    hosts: tuple[Keyring, Keyring],
) -> None:
    a, b = hosts
    version = a.rotate()
    blob = a.seal(b"order 1001", b"aad")
    with pytest.raises(UnknownKeyVersionError, match=f"KEK version {version}.*export-version"):
        b.open(blob, b"aad")
    passphrase = new_passphrase()
    token = a.export_version_sealed(version, passphrase)
    assert b.import_version_sealed(token, passphrase, make_current=True) == (version, True)
    assert (b.current_version, b.open(blob, b"aad")) == (version, b"order 1001")
    assert b.import_version_sealed(token, passphrase, make_current=True) == (version, False)
    assert Keyring.load(b.path).current_version == version  # persisted


def test_an_imported_newer_version_becomes_current_only_when_asked(
    hosts: tuple[Keyring, Keyring],
) -> None:
    """make_current=False adds the version for reading and keeps sealing under the current one."""
    a, b = hosts
    version = a.rotate()
    passphrase = new_passphrase()
    token = a.export_version_sealed(version, passphrase)
    assert b.import_version_sealed(token, passphrase, make_current=False) == (version, True)
    assert (b.versions, b.current_version) == ((1, 2), 1)
    assert Keyring.load(b.path).current_version == 1
    assert b.open(a.seal(b"order 1001", b"aad"), b"aad") == b"order 1001"
    assert b.import_version_sealed(token, passphrase, make_current=True) == (version, False)
    assert (b.current_version, Keyring.load(b.path).current_version) == (version, version)


@pytest.mark.parametrize("version", [keyfile.MAX_VERSION + 1, 9_999_999_999])
def test_an_export_of_a_version_past_uint32_is_refused_and_the_file_is_untouched(
    hosts: tuple[Keyring, Keyring], version: int
) -> None:
    """A blob header holds the version as uint32: such a version would brick keyring.json."""
    a, b = hosts
    passphrase = new_passphrase()
    export = KekExport(a.keyring_id, version, "2026-01-01T00:00:00+00:00", os.urandom(32))
    before = b.path.read_bytes()
    for make_current in (True, False):
        with pytest.raises(KeyringError, match="from 1 to 4294967295"):
            b.import_version_sealed(
                seal_export(export, passphrase), passphrase, make_current=make_current
            )
    assert b.path.read_bytes() == before
    assert Keyring.load(b.path).versions == (1,)


def test_the_export_never_holds_the_key_in_clear(hosts: tuple[Keyring, Keyring]) -> None:
    a, _ = hosts
    token = a.export_version_sealed(1, new_passphrase())
    key = json.loads(a.path.read_text())["versions"][0]["key"]
    assert key not in token
    assert base64.b64decode(key).hex() not in token
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "PBES2-HS512+A256KW"
    assert header["p2c"] == 300_000


def test_a_wrong_passphrase_or_an_altered_export_is_one_opaque_error(
    hosts: tuple[Keyring, Keyring],
) -> None:
    a, b = hosts
    version = a.rotate()
    passphrase = new_passphrase()
    token = a.export_version_sealed(version, passphrase)
    with pytest.raises(DecryptionError, match="does not open with this passphrase"):
        b.import_version_sealed(token, new_passphrase(), make_current=True)
    parts = token.split(".")
    parts[3] = parts[3][:-2] + ("AA" if not parts[3].endswith("AA") else "BB")
    with pytest.raises(DecryptionError, match="does not open with this passphrase"):
        b.import_version_sealed(".".join(parts), passphrase, make_current=True)
    assert version not in b.versions


def test_another_deployments_export_and_a_diverged_version_are_refused(tmp_path: Path) -> None:
    a = Keyring.create(tmp_path / "a.json")
    stranger = Keyring.create(tmp_path / "stranger.json")
    passphrase = new_passphrase()
    with pytest.raises(KeyringError, match="this host's keyring is"):
        a.import_version_sealed(
            stranger.export_version_sealed(1, passphrase), passphrase, make_current=True
        )
    b = Keyring.load(_copy_keyring(tmp_path / "a.json", tmp_path / "b"))
    a.rotate()
    b.rotate()  # each host rotated on its own: two different version-2 keys
    with pytest.raises(KeyringError, match="another key as KEK version 2"):
        b.import_version_sealed(
            a.export_version_sealed(2, passphrase), passphrase, make_current=True
        )


@pytest.fixture
def two_hosts(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Settings, Settings]:
    """Host A initialised on PostgreSQL; host B a second data directory on the same store."""
    isolate_cli(monkeypatch, tmp_path, DATABASE_URL=postgres_url)
    a = Settings(data_dir=tmp_path / "data", database_url=postgres_url)
    initialise(a).close()
    _copy_keyring(a.keyring_path, tmp_path / "b")
    b = Settings(data_dir=tmp_path / "b", database_url=postgres_url)
    return a, b


@pytest.mark.parametrize("rewrap", ["--rewrap", "--no-rewrap"])
def test_rotation_on_one_host_is_detected_on_the_other_at_start_and_on_use(
    rewrap: str,
    two_hosts: tuple[Settings, Settings],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    a, b = two_hosts
    running_b = open_deployment(b)  # B is serving when A rotates
    try:
        assert main(["keyring", "rotate", rewrap]) == 0  # on host A (INTERLOCK_DATA_DIR)
        capsys.readouterr()
        deployment_a = open_deployment(a)
        try:
            Vault(deployment_a.engine, deployment_a.keyring, audit=MemorySink()).write(
                "erp/api-key", b"sealed under v2", actor=ADMIN
            )
        finally:
            deployment_a.close()
        # On use: B's keyring lacks version 2; the error names it and the fix.
        vault_b = Vault(running_b.engine, running_b.keyring, audit=MemorySink())
        with pytest.raises(UnknownKeyVersionError, match=r"KEK version 2.*import-version"):
            vault_b.read("erp/api-key", actor=ADMIN)
    finally:
        running_b.close()
    # At start: B refuses, naming the version and the commands.
    with pytest.raises(KeyringError, match=r"KEK version 2.*export-version 2") as refused:
        open_deployment(b)
    assert str(b.data_dir) in str(refused.value)

    export = tmp_path / "kek-v2.jwe"
    assert main(["keyring", "export-version", "2", "--out", str(export)]) == 0
    captured = capsys.readouterr()
    passphrase = captured.err.rsplit(":", 1)[1].strip()
    assert passphrase not in export.read_text()
    assert oct(export.stat().st_mode & 0o777) == "0o600"
    monkeypatch.setenv("INTERLOCK_DATA_DIR", str(b.data_dir))
    monkeypatch.setattr("sys.stdin", _Stdin(passphrase + "\n"))
    assert main(["keyring", "import-version", str(export)]) == 0
    assert "KEK version 2 imported; it is now current" in capsys.readouterr().out
    deployment_b = open_deployment(b)
    try:
        vault_b = Vault(deployment_b.engine, deployment_b.keyring, audit=MemorySink())
        secret, _ = vault_b.read("erp/api-key", actor=ADMIN)
        assert secret.reveal() == b"sealed under v2"
    finally:
        deployment_b.close()


class _Stdin:
    """Standard input that is not a terminal."""

    def __init__(self, text: str) -> None:
        self._text = text

    def isatty(self) -> bool:
        return False

    def read(self, limit: int = -1) -> str:
        return self._text[:limit] if limit >= 0 else self._text
