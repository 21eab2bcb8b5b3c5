"""Fail the build on a known vulnerability in a locked dependency set, unless waived.

Runs pip-audit over hash-pinned requirements files (the export of uv.lock, and
requirements/lowest.txt: the floors of pyproject.toml) against the OSV database,
then applies the dated waivers of ``requirements/waivers.toml``:

* a vulnerability with no waiver, or with a waiver past its ``expires`` date,
  fails the build (exit 1);
* a waiver that matches nothing is reported, so it can be removed;
* when the vulnerability service cannot be reached (no network, DNS failure,
  timeout, a 5xx answer), the script says so in one line and exits 0: nothing
  was checked, and the build does not fail for that reason alone. A TLS error is
  not "unreachable": it fails (exit 1), since it may be an interception.

Usage: python tools/audit_dependencies.py REQUIREMENTS... [--waivers FILE] [--osv-url URL]
Exit status: 0 clean (or service unreachable), 1 vulnerable or audit failed,
2 malformed waivers file (``FILE:LINE: field: message``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import requests

OSV_URL: Final = "https://api.osv.dev/v1/query"
WAIVERS: Final = Path("requirements/waivers.toml")
#: The longest a waiver may last: it must be looked at again within a quarter.
MAX_WAIVER: Final = timedelta(days=90)
PROBE_TIMEOUT: Final = 10.0
AUDIT_TIMEOUT_SECONDS: Final = 600


class WaiverFileError(Exception):
    """The waivers file is malformed; the message names file, line and field."""


@dataclass(frozen=True)
class Waiver:
    """An accepted vulnerability: which, in what, why, and until when."""

    id: str
    package: str
    reason: str
    recorded: date
    expires: date


@dataclass(frozen=True)
class Finding:
    """One vulnerability pip-audit reported for one locked package."""

    source: str
    package: str
    version: str
    id: str
    aliases: tuple[str, ...]
    fix_versions: tuple[str, ...]


def normalise(name: str) -> str:
    """PEP 503 normalised project name."""
    return "-".join(name.lower().replace("_", "-").replace(".", "-").split("-"))


def load_waivers(path: Path) -> list[Waiver]:
    """The waivers of ``path`` (none when it does not exist), each fully checked."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise WaiverFileError(f"{path}: {error}") from None
    headers = [n for n, line in enumerate(text.splitlines(), 1) if line.strip() == "[[waiver]]"]
    unknown = sorted(set(document) - {"waiver"})
    if unknown:
        raise WaiverFileError(f"{path}:1: {unknown[0]}: unknown table (only [[waiver]])")
    entries = document.get("waiver", [])
    return [
        _waiver(path, headers[i] if i < len(headers) else 0, i, entry)
        for i, entry in enumerate(entries)
    ]


def _waiver(path: Path, line: int, index: int, entry: dict[str, Any]) -> Waiver:
    def fail(field: str, message: str) -> WaiverFileError:
        return WaiverFileError(f"{path}:{line}: waiver[{index}].{field}: {message}")

    fields = {"id", "package", "reason", "recorded", "expires"}
    for name in sorted(set(entry) - fields):
        raise fail(name, "unknown field")
    for name in ("id", "package", "reason"):
        value = entry.get(name)
        if not isinstance(value, str) or not value.strip():
            raise fail(name, "missing (a non-empty string)")
    if len(entry["reason"].split()) < 5:
        raise fail("reason", "say why it does not apply or cannot be fixed yet (5 words or more)")
    for name in ("recorded", "expires"):
        value = entry.get(name)
        if not isinstance(value, date) or isinstance(value, datetime):
            raise fail(name, "missing (a TOML date such as 2026-12-04, unquoted)")
    recorded, expires = entry["recorded"], entry["expires"]
    if expires <= recorded:
        raise fail("expires", "must be after recorded")
    if expires - recorded > MAX_WAIVER:
        raise fail("expires", f"at most {MAX_WAIVER.days} days after recorded")
    return Waiver(entry["id"], normalise(entry["package"]), entry["reason"], recorded, expires)


def probe(url: str) -> str | None:
    """``None`` when the OSV service answers; otherwise why it cannot be reached.

    Raises :class:`requests.exceptions.SSLError`: a certificate that does not
    verify is not an outage and must not pass silently.
    """
    query = {"package": {"name": "pip", "ecosystem": "PyPI"}, "version": "0"}
    try:
        answer = requests.post(url, json=query, timeout=PROBE_TIMEOUT)
    except requests.exceptions.SSLError:
        raise
    except (requests.ConnectionError, requests.Timeout) as error:
        return type(error).__name__
    if answer.status_code >= 500:
        return f"HTTP {answer.status_code}"
    return None


def run_pip_audit(requirements: Path, osv_url: str, output: Path) -> int:
    """pip-audit over one hash-pinned file, JSON to ``output``; its exit status."""
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "--requirement",
        str(requirements),
        "--require-hashes",
        "--disable-pip",
        "--vulnerability-service",
        "osv",
        "--osv-url",
        osv_url,
        "--format",
        "json",
        "--output",
        str(output),
        "--progress-spinner",
        "off",
    ]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run(  # noqa: S603 - fixed arguments, our own interpreter
        command, env=env, timeout=AUDIT_TIMEOUT_SECONDS, check=False, capture_output=True
    )
    if done.returncode not in (0, 1):
        sys.stderr.write(done.stderr.decode(errors="replace")[-2000:])
    return done.returncode


def findings(source: str, report: dict[str, Any]) -> tuple[list[Finding], list[str]]:
    """The vulnerabilities of a pip-audit JSON report, and the packages it skipped."""
    found: list[Finding] = []
    skipped: list[str] = []
    for dependency in report.get("dependencies", []):
        if "skip_reason" in dependency:
            skipped.append(f"{dependency['name']}: {dependency['skip_reason']}")
            continue
        found.extend(
            Finding(
                source,
                normalise(dependency["name"]),
                dependency.get("version", "?"),
                vuln["id"],
                tuple(vuln.get("aliases", [])),
                tuple(vuln.get("fix_versions", [])),
            )
            for vuln in dependency.get("vulns", [])
        )
    return found, skipped


def waiver_for(finding: Finding, waivers: Sequence[Waiver]) -> Waiver | None:
    """The waiver naming this package and this advisory (by id or alias)."""
    names = {finding.id, *finding.aliases}
    return next((w for w in waivers if w.package == finding.package and w.id in names), None)


def audit(files: Sequence[Path], waivers: Sequence[Waiver], osv_url: str, today: date) -> int:
    """Audit every file; print the verdict; the exit status."""
    try:
        unreachable = probe(osv_url)
    except requests.exceptions.SSLError as error:
        print(f"audit: FAILED: TLS to the vulnerability service {osv_url} failed: {error}")
        return 1
    if unreachable is not None:
        print(
            f"audit: the vulnerability service {osv_url} cannot be reached ({unreachable}): "
            f"known vulnerabilities were NOT checked; not failing the build for that alone"
        )
        return 0
    all_found: list[Finding] = []
    with tempfile.TemporaryDirectory(prefix="interlock-audit-") as tmp:
        for number, requirements in enumerate(files):
            output = Path(tmp) / f"report-{number}.json"
            status = run_pip_audit(requirements, osv_url, output)
            if status not in (0, 1) or not output.exists():
                print(f"audit: FAILED: pip-audit could not audit {requirements} (exit {status})")
                return 1
            found, skipped = findings(str(requirements), json.loads(output.read_text()))
            for line in skipped:
                print(f"audit: {requirements}: not audited: {line}")
            all_found.extend(found)
    return verdict(all_found, waivers, today)


def verdict(found: Sequence[Finding], waivers: Sequence[Waiver], today: date) -> int:
    """Print each finding with its waiver status; 1 when any is not validly waived."""
    failing = 0
    used: set[Waiver] = set()
    for finding in found:
        where = f"{finding.source}: {finding.package} {finding.version}: {finding.id}"
        fixes = _fixes(finding)
        waiver = waiver_for(finding, waivers)
        if waiver is not None:
            used.add(waiver)
        if waiver is None:
            failing += 1
            print(f"audit: VULNERABLE {where} ({fixes}); no waiver")
        elif waiver.expires < today:
            failing += 1
            print(f"audit: VULNERABLE {where} ({fixes}): its waiver expired on {waiver.expires}")
        else:
            print(f"audit: waived {where} until {waiver.expires}: {waiver.reason}")
    for waiver in waivers:
        if waiver not in used:
            print(f"audit: unused waiver {waiver.id} ({waiver.package}): remove it")
    if failing:
        print(f"audit: FAILED: {failing} known vulnerabilities without a valid waiver")
        return 1
    print(f"audit: no known vulnerability without a valid waiver ({len(found)} found)")
    return 0


def _fixes(finding: Finding) -> str:
    """``also ALIAS; fixed in: V`` for one finding."""
    aliases = [alias for alias in finding.aliases if alias != finding.id]
    also = f"also {', '.join(aliases)}; " if aliases else ""
    return f"{also}fixed in: {', '.join(finding.fix_versions) or 'no release yet'}"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, load waivers, audit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requirements", nargs="+", type=Path)
    parser.add_argument("--waivers", type=Path, default=WAIVERS)
    parser.add_argument(
        "--osv-url", default=os.environ.get("INTERLOCK_OSV_URL", OSV_URL), help="OSV query API"
    )
    args = parser.parse_args(argv)
    missing = [str(path) for path in args.requirements if not path.is_file()]
    if missing:
        print(f"audit: {missing[0]}: no such requirements file", file=sys.stderr)
        return 2
    try:
        waivers = load_waivers(args.waivers)
    except WaiverFileError as error:
        print(f"audit: {error}", file=sys.stderr)
        return 2
    today = datetime.now(UTC).date()
    return audit(args.requirements, waivers, args.osv_url, today)


if __name__ == "__main__":
    sys.exit(main())
