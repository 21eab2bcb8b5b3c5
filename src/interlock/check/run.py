"""One run of ``interlock check``: validate, check configuration, add live evidence, waive.

A manifest that fails validation raises the :class:`~interlock.errors.ManifestError`
``interlock validate`` would report (every located error), never a partial
scorecard. Live evidence comes from an injected callable (the CLI passes
:func:`interlock.check.live.live_findings` bound to the deployment), so the
run itself needs no network and tests can supply their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Final

from interlock.check.catalogue import item
from interlock.check.config_checks import check_configuration
from interlock.check.results import Finding, Location, Scorecard, Severity, Waiver
from interlock.check.types import type_findings
from interlock.check.waivers import apply_waivers
from interlock.clock import Clock, utc_now
from interlock.config.checks import known_hint
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.config.yaml_source import YamlDocument, YamlSourceError, read_yaml
from interlock.errors import ConfigError
from interlock.validation.artifacts import route_artifacts

__all__ = ["CheckInputError", "LiveProbe", "blocking", "run_check"]

LiveProbe = Callable[[Manifest], Iterable[Finding]]
"""Extra findings from live probes of the deployment, given the validated manifest."""

_RANK: Final[dict[Severity, int]] = {"low": 0, "medium": 1, "high": 2}


class CheckInputError(ConfigError):
    """A request ``interlock check`` cannot answer (an unknown integration, say)."""

    code = "check_input"


def run_check(
    manifest_path: Path,
    *,
    integration: str | None = None,
    waivers: list[Waiver] | None = None,
    today: date | None = None,
    live: LiveProbe | None = None,
    now: Clock = utc_now,
) -> Scorecard:
    """The scorecard of ``manifest_path`` (only ``integration`` when given).

    ``today`` decides which waivers have expired (default: today in UTC);
    ``now`` is read once, for what has expired (certificates) and the scorecard's time.
    Raises ManifestError for an invalid manifest and :class:`CheckInputError`
    for an unknown integration, in ``integration`` or in a waiver.
    """
    manifest = load_manifest(manifest_path, route_artifacts)
    names = list(manifest.integrations)
    if integration is not None and integration not in manifest.integrations:
        hint = known_hint(integration, names, "integrations")
        raise CheckInputError(f"unknown integration {integration!r}{hint}")
    for waiver in waivers or ():
        if waiver.integration not in manifest.integrations:
            raise CheckInputError(
                f"a waiver of {waiver.item} names unknown integration "
                f"{waiver.integration!r}{known_hint(waiver.integration, names, 'integrations')}"
            )
    at = now()
    source_map = _source_map(manifest_path)
    findings = check_configuration(manifest, source_map, manifest_path, now=lambda: at)
    for name, flow in manifest.integrations.items():
        line, column = (
            source_map.position(("integrations", name), key=True) if source_map else (1, 1)
        )
        findings.extend(type_findings(name, flow, Location(str(manifest_path), line, column)))
    if live is not None:
        findings.extend(live(manifest))
    if integration is not None:
        findings = [f for f in findings if f.integration in {integration, None}]
    findings = apply_waivers(findings, waivers or [], today or at.date())
    return Scorecard(
        manifest=str(manifest_path),
        generated=at,
        live=live is not None,
        findings=tuple(findings),
    )


def blocking(scorecard: Scorecard, fail_on: Severity) -> list[Finding]:
    """The unwaived failures whose item's severity is ``fail_on`` or higher."""
    floor = _RANK[fail_on]
    return [f for f in scorecard.findings if f.failed and _RANK[_severity(f.item)] >= floor]


def _severity(item_id: str) -> Severity:
    try:
        return item(item_id).severity
    except KeyError:  # a live probe of a check not in the list: count it, never drop it
        return "high"


def _source_map(path: Path) -> YamlDocument | None:
    try:
        return read_yaml(path)
    except YamlSourceError:  # the file changed since it validated: findings lose their lines
        return None
