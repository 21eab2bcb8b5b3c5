"""Leak hygiene: find hardcoded secrets and insecure switches in a source tree.

``scan(root, baseline)`` reads every tracked or unignored text file below
``root`` and reports the credential formats of the one registry
(:mod:`interlock.credentials`: provider tokens, Interlock keys with their
checksum, private keys, JWTs, ``Authorization`` values, credentials on command
lines, in XML and in URLs), secrets assigned to secret-named fields, and
switches that turn TLS verification, SSH host-key checks, safe YAML loading or
safe XML parsing off. Values are masked in every output; a baseline accepts
known findings by fingerprint, each with a reason.
"""

from __future__ import annotations

from interlock.scan.baseline import (
    BASELINE_NAME,
    Baseline,
    BaselineEntry,
    ScanInputError,
    load_baseline,
    write_baseline,
)
from interlock.scan.finding import Finding
from interlock.scan.report import to_json, to_text
from interlock.scan.rules import RULES, Rule
from interlock.scan.sarif import to_sarif
from interlock.scan.scanner import ScanReport, scan, scan_text

__all__ = [
    "BASELINE_NAME",
    "RULES",
    "Baseline",
    "BaselineEntry",
    "Finding",
    "Rule",
    "ScanInputError",
    "ScanReport",
    "load_baseline",
    "scan",
    "scan_text",
    "to_json",
    "to_sarif",
    "to_text",
    "write_baseline",
]
