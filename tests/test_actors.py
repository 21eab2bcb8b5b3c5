"""Who acts is named: an operator passes the vault's policy, a client is checked by it."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.actors import Client, Operator
from interlock.audit.sink import MemorySink
from interlock.config.settings import Settings
from interlock.secrets.errors import AccessDeniedError
from interlock.secrets.vault import Vault
from interlock.store import initialise


def test_labels_are_what_the_audit_trail_records() -> None:
    """An operator by its own name, a client as ``client:NAME``; empty names are refused."""
    assert Operator("admin:alice").label == "admin:alice"
    assert Client("order-sync").label == "client:order-sync"
    with pytest.raises(ValueError, match="operator"):
        Operator("")
    with pytest.raises(ValueError, match="client"):
        Client("x" * 64)


def test_a_client_needs_a_grant_and_an_operator_does_not(tmp_path: Path) -> None:
    """The same read: refused for a client without a grant, allowed for an operator; both on record."""
    deployment = initialise(
        Settings(data_dir=tmp_path / "d", database_url=f"sqlite:///{tmp_path / 's.db'}")
    )
    sink = MemorySink()
    vault = Vault(deployment.engine, deployment.keyring, audit=sink, cache_seconds=0)
    operator = Operator("admin:test")
    vault.write("erp/api-key", b"k", actor=operator)
    with pytest.raises(AccessDeniedError):
        vault.read("erp/api-key", actor=Client("order-sync"))
    assert vault.read("erp/api-key", actor=operator)[0].reveal() == b"k"
    vault.policy.grant("order-sync", "erp/*", ["read"])
    assert vault.read("erp/api-key", actor=Client("order-sync"))[0].reveal() == b"k"
    actors = [(e.actor, e.action) for e in sink.entries]
    assert ("client:order-sync", "secret.denied") in actors
    assert ("admin:test", "secret.read") in actors
    assert ("client:order-sync", "secret.read") in actors
    deployment.close()
