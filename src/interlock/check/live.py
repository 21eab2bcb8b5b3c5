"""``interlock check --live``: evidence from probes, not just configuration.

:func:`live_findings` runs every probe and returns their findings, each with
``live=True`` and the checklist item it is evidence for:

* upstream TLS: ``tls_required``, ``certificates_validated`` (per integration);
* the gateway's error answers: ``sanitised_errors`` (the deployment);
* the audit log: ``audit_trail`` (the deployment);
* the keyring and sealed columns: ``encryption_at_rest`` (the deployment);
* audit bodies and lineage rows kept past the retention: ``retention`` (per
  integration);
* ``interlock scan`` over ``source``: ``secrets_manager`` (and the items of
  insecure switches);
* ``secrets overdue``: ``secrets_manager`` (the integrations naming the secret);
* ``pki list --expiring``: ``certificates_validated`` (the client's integrations);
* ``db audit``: ``least_privilege`` of shared-database integrations (their grants).

What each checks is in its module (:mod:`~interlock.check.live_tls`,
:mod:`~interlock.check.live_errors`, :mod:`~interlock.check.live_store`,
:mod:`~interlock.check.live_retention`,
:mod:`~interlock.check.live_hygiene`). A peer that cannot be reached, a
database that cannot be read, is a failed finding with the reason: no probe
raises for what it finds. Probes that need a part the caller does not have
(no deployment, no gateway URL, no source) are reported as ``needs_evidence``
with what to pass, never silently skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Final

from interlock.check.live_databases import database_findings
from interlock.check.live_errors import error_findings
from interlock.check.live_hygiene import certificate_findings, overdue_findings, scan_findings
from interlock.check.live_retention import retention_findings
from interlock.check.live_store import audit_findings, sealing_findings
from interlock.check.live_tls import Trust, tls_findings
from interlock.check.results import Finding
from interlock.config.manifest import Manifest
from interlock.config.settings import Settings
from interlock.pki.authority import Pki
from interlock.secrets.vault import Vault
from interlock.store import Deployment
from interlock.store.sealed import SealedColumn

__all__ = ["GATEWAY_CA", "TIMEOUT", "live_findings"]

#: Seconds each connect, read and handshake of a probe may take.
TIMEOUT: Final = 5.0
#: The gateway's CA as ``interlock serve`` writes it, in the data directory.
GATEWAY_CA: Final = "ca.pem"


def live_findings(
    manifest: Manifest,
    settings: Settings,
    *,
    trust: Trust,
    deployment: Deployment | None,
    vault: Vault | None,
    sealed_columns: Sequence[SealedColumn],
    gateway_url: str | None,
    ca_file: Path | None,
    source: Path | None,
    now: datetime,
    timeout: float = TIMEOUT,
) -> list[Finding]:
    """Every live probe's findings (``live=True``), in a stable order.

    ``trust`` turns a manifest ``ca`` into a verifying context (the face
    passes ``lambda ca: gateway.tls.trust_context(ca, anchors, "1.2")`` with
    the local CA as ``pki:internal``; the floor 1.2 lets the probe record a
    system that offers 1.2 where 1.3 is required). ``deployment`` (None: not
    initialised here) gives the store, keyring and PKI; ``vault`` (opened with
    the deployment's audit sink) lists secrets for ``secrets overdue``;
    ``sealed_columns`` is :func:`interlock.tables.sealed_columns` (a layer
    above this one). ``gateway_url`` is the running gateway
    (``https://127.0.0.1:8443``), verified against ``ca_file``, else the data
    directory's ``ca.pem`` if present, else the system store. ``source`` is a
    tree for ``interlock scan``. ``now`` is the clock's reading that expiry
    and freshness are judged against; ``timeout`` bounds each network step.
    """
    found = tls_findings(manifest, trust, now, timeout)
    found.extend(_gateway(settings, gateway_url, ca_file, manifest, timeout))
    if deployment is None:
        found.extend(_absent(_NO_DEPLOYMENT, "audit_trail", "encryption_at_rest", "retention"))
    else:
        found.extend(audit_findings(settings, now))
        found.extend(sealing_findings(deployment.engine, deployment.keyring, sealed_columns))
        found.extend(retention_findings(manifest, settings, deployment.engine, now))
        pki = Pki(
            deployment.engine,
            deployment.keyring,
            deployment.deployment_id,
            settings.trust_domain,
            now=lambda: now,
        )
        found.extend(certificate_findings(manifest, pki, now))
    if vault is None:
        found.extend(_absent(_NO_VAULT, "secrets_manager"))
    else:
        found.extend(overdue_findings(manifest, vault, now))
        found.extend(database_findings(manifest, vault))
    if source is None:
        found.extend(_absent(_NO_SOURCE, "secrets_manager"))
    else:
        found.extend(scan_findings(source))
    return found


def _gateway(
    settings: Settings,
    gateway_url: str | None,
    ca_file: Path | None,
    manifest: Manifest,
    timeout: float,
) -> list[Finding]:
    if gateway_url is None:
        return _absent(_NO_GATEWAY, "sanitised_errors")
    trust = ca_file
    if trust is None and (settings.data_dir / GATEWAY_CA).is_file():
        trust = settings.data_dir / GATEWAY_CA
    return [error_findings(gateway_url, manifest, trust, timeout)]


def _absent(why: str, *items: str) -> list[Finding]:
    reason, fix = why.split("|")
    return [Finding(item, None, "needs_evidence", reason, fix=fix, live=True) for item in items]


_NO_DEPLOYMENT: Final = (
    "no deployment here to read the audit log, lineage index, keyring and PKI from"
    "|run on the gateway's host (INTERLOCK_DATA_DIR) or `interlock init`"
)
_NO_VAULT: Final = (
    "the vault was not opened: secrets overdue for rotation were not checked"
    "|run on the gateway's host (INTERLOCK_DATA_DIR)"
)
_NO_SOURCE: Final = (
    "no source tree was scanned for hardcoded secrets"
    "|pass --source PATH (the integration code's repository)"
)
_NO_GATEWAY: Final = (
    "the running gateway's error answers were not probed"
    "|pass --gateway https://HOST:PORT (and --ca for its CA)"
)
