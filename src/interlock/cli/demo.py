"""``interlock demo``: the interim demo until the gateway lands.

It initialises a fresh deployment in a new data directory (keyring, migrated
store), validates the manifest and shows what it connects. Honest about what
it is: nothing is served yet.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from interlock.cli.context import console, settings, state
from interlock.cli.render import integration_table, route_table, system_table
from interlock.config.loader import check_manifest
from interlock.config.manifest import Manifest
from interlock.errors import ManifestError
from interlock.store import head_revision, initialise

__all__ = ["demo"]


def demo(
    manifest: Annotated[Path, typer.Argument(help="Manifest to show.")] = Path(
        "examples/interlock.yaml"
    ),
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the demo's data directory afterwards.")
    ] = False,
) -> None:
    """Initialise a fresh deployment, validate MANIFEST and print what it connects."""
    report = check_manifest(manifest)
    if report.manifest is None or report.errors:
        raise ManifestError(
            f"{manifest} is not valid; run `interlock validate {manifest}` for every error",
            diagnostics=report.errors,
        )
    fresh = state.data_dir is None
    if fresh:
        state.data_dir = tempfile.mkdtemp(prefix="interlock-demo-")  # created 0700
    data_dir = Path(state.data_dir or "")
    try:
        _show(manifest, report.manifest, len(report.warnings))
    finally:
        if fresh and not keep:
            shutil.rmtree(data_dir, ignore_errors=True)
        elif fresh:
            console.print(f"Kept the data directory {data_dir}")


def _show(path: Path, manifest: Manifest, warnings: int) -> None:
    deployment = initialise(settings())
    try:
        keyring = deployment.keyring
        console.print(f"[bold]Interlock demo[/bold]: deployment {deployment.deployment_id}")
        console.print(f"  data directory  {deployment.settings.data_dir} (0700)")
        console.print(
            f"  keyring         {keyring.keyring_id}, KEK version {keyring.current_version}"
        )
        console.print(f"  store           schema {head_revision()}")
        console.print(f"  manifest        {path}: OK, {warnings} warnings\n")
        for table in (system_table(manifest), integration_table(manifest), route_table(manifest)):
            console.print(table)
        console.print(
            "This interim demo validates and shows the manifest; the gateway that serves "
            "these routes comes next (`interlock serve`)."
        )
    finally:
        deployment.close()
