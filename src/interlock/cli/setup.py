"""``interlock init`` and ``interlock migrate``."""

from __future__ import annotations

import typer

from interlock.cli.context import console, settings
from interlock.pki import ensure_local_ca
from interlock.store import head_revision, initialise, open_deployment

__all__ = ["init", "migrate"]


def init() -> None:
    """Create the data directory (0700), a new keyring (0600 file, or in the HSM) and the store.

    Refuses to overwrite an existing keyring.
    """
    deployment = initialise(settings())
    try:
        ca = ensure_local_ca(deployment.engine, deployment.keyring, deployment.deployment_id)
        data_dir = deployment.settings.data_dir
        console.print(f"Initialised deployment {deployment.deployment_id}")
        console.print(f"  data directory  {data_dir} (0700)")
        keyring = deployment.keyring
        if keyring.backend == "file":
            console.print(f"  keyring         {keyring.path} (0600)")
        else:
            console.print(f"  keyring         {keyring.keyring_id} in {keyring.describe()}")
        console.print(f"  store           {deployment.engine.url!r} at {head_revision()}")
        console.print(f"  local CA        {ca.certificate.subject.rfc4514_string()} (key sealed)")
        if keyring.backend == "file":
            console.print("Back up the keyring file: without it, sealed data cannot be read.")
        else:
            console.print("Back up the token's keys as the HSM's vendor prescribes.")
    finally:
        deployment.close()


def migrate() -> None:
    """Apply pending database migrations (they also run at every start)."""
    deployment = open_deployment(settings())
    try:
        typer.echo(f"store at schema {head_revision()}")
    finally:
        deployment.close()
