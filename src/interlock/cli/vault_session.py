"""The deployment, its audit trail and its vault, opened together for one CLI command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from interlock.audit.service import AuditLog
from interlock.audit.sink import AuditSink
from interlock.cli.context import settings
from interlock.secrets.vault import Vault
from interlock.store import Deployment, open_deployment

__all__ = ["VaultSession", "open_vault_session"]


@dataclass(frozen=True)
class VaultSession:
    """What a ``secrets`` command works with; every vault read and change is recorded."""

    deployment: Deployment
    audit: AuditSink
    vault: Vault


@contextmanager
def open_vault_session() -> Iterator[VaultSession]:
    """Open the deployment, its audit log and an uncached vault; all closed on exit."""
    deployment = open_deployment(settings())
    try:
        log = AuditLog.open(deployment.settings, deployment.keyring)
        try:
            vault = Vault(deployment.engine, deployment.keyring, audit=log.sink, cache_seconds=0)
            yield VaultSession(deployment, log.sink, vault)
        finally:
            log.close()
    finally:
        deployment.close()
