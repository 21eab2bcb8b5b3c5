"""The parts ``interlock check --live`` hands to the live probes, opened for one run.

On the gateway's host the deployment (store, keyring, PKI), its audit log and
the vault are opened; elsewhere (no ``interlock init`` here) the probes that
need them report ``needs_evidence`` instead. Upstream TLS is verified as the
gateway verifies it: the manifest's ``ca`` with the deployment's local CA as
``pki:internal``, TLS 1.2 as the floor so that a system offering 1.2 where
1.3 is required is recorded rather than unreachable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from interlock.audit.service import AuditLog
from interlock.check.results import Finding
from interlock.check.run import LiveProbe
from interlock.cli.context import served_anchors, settings
from interlock.config.manifest import Manifest
from interlock.errors import NotInitialisedError
from interlock.gateway.tls import trust_context
from interlock.secrets.vault import Vault
from interlock.store import Deployment, open_deployment
from interlock.tables import sealed_columns

__all__ = ["live_probe"]


@contextmanager
def live_probe(
    live_findings: Any, *, gateway: str | None, source: Path | None, ca_file: Path | None
) -> Iterator[LiveProbe]:
    """A probe calling ``live_findings`` with this host's deployment parts; closed on exit."""
    current = settings()
    with ExitStack() as stack:
        deployment: Deployment | None = None
        vault: Vault | None = None
        try:
            opened = open_deployment(current)
        except NotInitialisedError:  # not the gateway's host: those probes need evidence
            pass
        else:
            deployment = opened
            stack.callback(opened.close)
            log = AuditLog.open(current, opened.keyring)
            stack.callback(log.close)
            vault = Vault(opened.engine, opened.keyring, audit=log.sink, cache_seconds=0)
        anchors = served_anchors(current)

        def probe(manifest: Manifest) -> list[Finding]:
            return list(
                live_findings(
                    manifest,
                    current,
                    trust=lambda ca: trust_context(ca, anchors, "1.2"),
                    deployment=deployment,
                    vault=vault,
                    sealed_columns=sealed_columns(),
                    gateway_url=gateway,
                    ca_file=ca_file,
                    source=source,
                    now=datetime.now(UTC),
                )
            )

        yield probe


def load_live_findings() -> Any:
    """``interlock.check.live.live_findings``, imported when --live asks for it (the
    probes pull in TLS, the audit log and the scanner, which the configuration mode
    does not need)."""
    from interlock.check.live import live_findings

    return live_findings
