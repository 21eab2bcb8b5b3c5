"""``--live``: leaked secrets in the source, secrets overdue for rotation, certificates due.

* :func:`scan_findings` runs ``interlock scan`` (:func:`interlock.scan.scan`,
  with the source tree's own baseline, as the command does) over ``--source``.
  A hardcoded secret fails ``secrets_manager``; a switch that turns TLS
  verification off fails ``certificates_validated`` (``sslmode=disable``:
  ``tls_required``); unsafe YAML/XML parsing fails ``input_validation``. One
  finding per hit, located in the source file, values masked as the scanner
  masks them; a clean tree is one passing ``secrets_manager`` finding.
* :func:`overdue_findings` is ``interlock secrets overdue``
  (:func:`interlock.secrets.rotation.overdue`): each overdue secret fails
  ``secrets_manager`` for the integrations whose systems or rules name it
  (the deployment when none does).
* :func:`certificate_findings` is ``interlock pki list --expiring 14d``
  (:meth:`interlock.pki.authority.Pki.due_for_renewal`): each certificate in use
  expiring within :data:`~interlock.check.live_tls.EXPIRY_MARGIN` fails
  ``certificates_validated`` for the integrations its client may call (a
  server certificate: the deployment).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Final

from interlock.check.live_tls import EXPIRY_MARGIN
from interlock.check.results import Finding, Location
from interlock.config.manifest import Manifest
from interlock.pki.authority import Pki
from interlock.scan import BASELINE_NAME, ScanInputError, load_baseline, scan
from interlock.secrets.rotation import overdue
from interlock.secrets.vault import Vault

__all__ = ["MAX_SCAN_FINDINGS", "certificate_findings", "overdue_findings", "scan_findings"]

#: Scan hits reported one by one; beyond, one finding counts the rest.
MAX_SCAN_FINDINGS: Final = 50

_SWITCH_ITEMS: Final = {
    "tls-verify-disabled": "certificates_validated",
    "tls-unverified-context": "certificates_validated",
    "tls-cert-none": "certificates_validated",
    "tls-hostname-check-disabled": "certificates_validated",
    "ssh-unknown-host-accepted": "certificates_validated",
    "postgres-sslmode-disable": "tls_required",
}


def scan_findings(source: Path) -> list[Finding]:
    """Hardcoded secrets and insecure switches under ``source`` (a directory or a file)."""
    root = source.resolve()
    if not root.exists():
        reason = f"--source {source} does not exist"
        return [Finding("secrets_manager", None, "fail", reason, live=True)]
    base = root if root.is_dir() else root.parent
    shown = source if root.is_dir() else source.parent  # locations as the caller named the tree
    try:
        report = scan(root, load_baseline(base / BASELINE_NAME))
    except ScanInputError as exc:
        reason = f"interlock scan could not run: {exc.message}"
        return [Finding("secrets_manager", None, "fail", reason, live=True)]
    evidence = (
        f"interlock scan {source}: {report.files_scanned} files, {len(report.findings)} findings, "
        f"{len(report.suppressed)} accepted in the baseline",
    )
    found: list[Finding] = []
    for hit in report.findings[:MAX_SCAN_FINDINGS]:
        item = "secrets_manager" if hit.kind == "secret" else _switch_item(hit.rule_id)
        fix = (
            "move the value into the vault (interlock secrets put) and reference it as "
            "secret://NAME; rotate the leaked value"
            if hit.kind == "secret"
            else "remove the switch: verification and safe parsing stay on"
        )
        where = Location((shown / hit.path).as_posix(), hit.line, hit.column)
        reason = f"{hit.path}:{hit.line}: {hit.message} ({hit.rule_id})"
        found.append(Finding(item, None, "fail", reason, evidence, where, fix, live=True))
    rest = len(report.findings) - MAX_SCAN_FINDINGS
    if rest > 0:
        reason = f"{rest} more findings of interlock scan are not listed here"
        found.append(Finding("secrets_manager", None, "fail", reason, evidence, live=True))
    if not any(f.item == "secrets_manager" for f in found):
        reason = f"no hardcoded secret found under {source}"
        found.append(Finding("secrets_manager", None, "pass", reason, evidence, live=True))
    return found


def _switch_item(rule_id: str) -> str:
    return _SWITCH_ITEMS.get(rule_id, "input_validation")


def overdue_findings(manifest: Manifest, vault: Vault, now: datetime) -> list[Finding]:
    """``secrets_manager``: secrets older than their maximum age (``secrets overdue``)."""
    late = overdue(vault, now)
    evidence = (f"interlock secrets overdue: {len(late)} overdue",)
    found: list[Finding] = []
    for info in late:
        days = (now - info.age_since).days
        expiry = f", certificate expires {info.not_after:%Y-%m-%d}" if info.not_after else ""
        reason = f"secret://{info.name} is overdue for rotation ({days} days old{expiry})"
        fix = f"interlock secrets rotate {info.name}"
        found.extend(
            Finding("secrets_manager", integration, "fail", reason, evidence, fix=fix, live=True)
            for integration in _users_of_secret(manifest, info.name)
        )
    if not late:
        reason = "no secret is overdue for rotation"
        found.append(Finding("secrets_manager", None, "pass", reason, evidence, live=True))
    return found


def _users_of_secret(manifest: Manifest, name: str) -> list[str | None]:
    reference = f"secret://{name}"
    systems = {s for s, system in manifest.systems.items() if system.credentials == reference}
    rules = {r for r, rule in manifest.rules.items() if rule.database == reference}
    users: list[str | None] = [
        integration_name
        for integration_name, integration in sorted(manifest.integrations.items())
        if any(
            route.upstream in systems or rules.intersection(route.rules or ())
            for route in integration.routes
        )
    ]
    return users or [None]


def certificate_findings(manifest: Manifest, pki: Pki, now: datetime) -> list[Finding]:
    """``certificates_validated``: PKI certificates in use expiring soon (``pki list``)."""
    due = pki.due_for_renewal(EXPIRY_MARGIN)
    evidence = (f"interlock pki list --expiring {EXPIRY_MARGIN.days}d: {len(due)} due",)
    found: list[Finding] = []
    for info in due:
        left = info.left(now)
        state = "expired" if left.total_seconds() <= 0 else f"expires in {left.days} days"
        reason = (
            f"{info.kind} certificate {info.serial} ({info.name}) {state} "
            f"({info.not_after:%Y-%m-%d})"
        )
        fix = f"interlock pki renew {info.serial}"
        holders = _holders(manifest, info.name) if info.kind == "client" else [None]
        found.extend(
            Finding("certificates_validated", integration, "fail", reason, evidence, fix=fix,
                    live=True)
            for integration in holders
        )  # fmt: skip
    if not due:
        reason = f"no PKI certificate in use expires within {EXPIRY_MARGIN.days} days"
        found.append(Finding("certificates_validated", None, "pass", reason, evidence, live=True))
    return found


def _holders(manifest: Manifest, client: str) -> list[str | None]:
    users: Iterable[str] = (
        name for name, i in sorted(manifest.integrations.items()) if client in i.all_callers
    )
    return list(users) or [None]
