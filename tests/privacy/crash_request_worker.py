"""A request worker that dies mid-call: run as a process by test_request_crash.py.

``python crash_request_worker.py DATA_DIR MANIFEST``: opens the deployment in
DATA_DIR (its SQLite store and audit log), and runs the due requests with a
connector that ends the process (``os._exit(3)``, no clean-up, no lease
released) the moment it is called — after the ``ask`` step was committed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from interlock.audit.service import AuditLog
from interlock.config.loader import load_manifest
from interlock.config.settings import Settings
from interlock.privacy.connectors import Action, Connector, ConnectorAnswer
from interlock.privacy.requests import PrivacyRequests
from interlock.store import open_deployment
from tests.privacy.request_support import open_lineage


class Dies:
    """A connector whose call is the end of the process."""

    def ask(
        self,
        action: Action,
        request_id: str,
        subject_kind: str,
        identifier: str,
        corrections: Mapping[str, str] | None,
    ) -> ConnectorAnswer:
        """Die."""
        sys.stdout.flush()
        os._exit(3)


def _dies(name: str) -> Connector:
    return Dies()


def main() -> None:
    """Run the due requests once (and die in the connector)."""
    data_dir, manifest = Path(sys.argv[1]), Path(sys.argv[2])
    settings = Settings(data_dir=data_dir)
    deployment = open_deployment(settings)
    log = AuditLog.open(settings, deployment.keyring, witnesses=[])
    lineage, hasher = open_lineage(deployment.engine, deployment.keyring)
    service = PrivacyRequests(
        deployment.engine,
        deployment.keyring,
        load_manifest(manifest),
        log.sink,
        lineage,
        hasher,
        connectors=_dies,
        worker="doomed",
    )
    service.run_due()
    sys.exit(0)  # not reached when a request was due


if __name__ == "__main__":
    main()
