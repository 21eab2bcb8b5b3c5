"""Run every detector that fits a file, and turn raw matches into findings.

Which detectors read a file depends on what it is: Python is parsed (secrets
assigned in code, insecure switches on the syntax tree); configuration files
are read line by line for assignments and switches; every text file,
documentation included, is searched for provider tokens, keys and passwords
in URLs. On one line a specific rule wins over the generic one.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from interlock.scan.assignments import find_config_assignments
from interlock.scan.baseline import BASELINE_NAME, Baseline
from interlock.scan.config_switches import find_config_switches, find_sslmode_disable
from interlock.scan.files import DEFAULT_MAX_BYTES, iter_files, read_text
from interlock.scan.finding import Finding, Match, fingerprint, mask
from interlock.scan.providers import find_provider_secrets
from interlock.scan.python_secrets import find_python_secrets
from interlock.scan.python_switches import find_python_switches
from interlock.scan.rules import rule

__all__ = ["ScanReport", "scan", "scan_text"]

_PYTHON: Final = frozenset({".py", ".pyi", ".pyw"})
_CONFIG: Final = frozenset(
    {".yaml", ".yml", ".json", ".toml", ".ini", ".cfg", ".conf", ".env", ".properties", ".tfvars"}
    | {".xml", ".config"}  # NuGet.Config, settings.xml, app.config: attribute assignments
    # Plain text and files without a suffix (hooks, Jenkinsfile, diffs, pasted snippets):
    # what lands there is mostly configuration, not prose.
    | {"", ".txt"}
)
_SCRIPTS: Final = frozenset(
    {
        ".sh",
        ".bash",
        ".zsh",
        ".js",
        ".mjs",
        ".cjs",
        ".ts",
        ".rb",
        ".go",
        ".java",
        ".kt",
        ".php",
        ".tf",
        ".hcl",
    }
)
_CONFIG_NAMES: Final = frozenset(
    {"dockerfile", "containerfile", ".npmrc", ".pypirc", ".netrc", "procfile"}
)


@dataclass(frozen=True)
class ScanReport:
    """The outcome of one scan."""

    findings: tuple[Finding, ...]  # not in the baseline
    suppressed: tuple[Finding, ...]  # in the baseline
    files_scanned: int


def scan(root: Path, baseline: Baseline, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ScanReport:
    """Scan ``root`` (a directory or one file); findings in ``baseline`` are set apart."""
    base = root if root.is_dir() else root.parent
    found: list[Finding] = []
    scanned = 0
    for path in iter_files(root):
        if path.name == BASELINE_NAME:
            continue
        text = read_text(path, max_bytes)
        if text is None:
            continue
        scanned += 1
        found.extend(scan_text(path.relative_to(base).as_posix(), text))
    kept = tuple(f for f in found if not baseline.suppresses(f))
    return ScanReport(kept, tuple(f for f in found if baseline.suppresses(f)), scanned)


def scan_text(relative: str, text: str) -> list[Finding]:
    """The findings in one file's ``text`` (``relative``: its path, which picks the detectors)."""
    return _findings(relative, _dedupe(_matches(relative, text)))


def _matches(relative: str, text: str) -> Iterator[Match]:
    name = relative.rsplit("/", 1)[-1].lower()
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    yield from find_provider_secrets(text)
    if suffix in _PYTHON:
        tree = _parse(text)
        if tree is not None:
            nodes = list(ast.walk(tree))
            yield from find_python_secrets(nodes)
            yield from find_python_switches(nodes, text.splitlines())
            return
        yield from find_config_assignments(text)
        yield from find_sslmode_disable(text)
    elif suffix in _CONFIG or name in _CONFIG_NAMES or name.startswith(".env"):
        yield from find_config_assignments(text)
        yield from find_config_switches(text)
        yield from find_sslmode_disable(text)
    elif suffix in _SCRIPTS:
        yield from find_config_assignments(text)
        yield from find_sslmode_disable(text)


def _parse(text: str) -> ast.Module | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes in scanned code
            return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return None


def _dedupe(matches: Iterable[Match]) -> list[Match]:
    by_line: dict[tuple[str, int], Match] = {}
    specific_lines: set[int] = set()
    for match in matches:
        by_line.setdefault((match.rule_id, match.line), match)
        if rule(match.rule_id).kind == "secret" and match.rule_id != "generic-secret":
            specific_lines.add(match.line)
    return sorted(
        (
            m
            for m in by_line.values()
            if not (m.rule_id == "generic-secret" and m.line in specific_lines)
        ),
        key=lambda m: (m.line, m.column, m.rule_id),
    )


def _findings(relative: str, matches: list[Match]) -> list[Finding]:
    findings = []
    for match in matches:
        spec = rule(match.rule_id)
        shown = mask(match.value) if spec.kind == "secret" else match.value
        findings.append(
            Finding(
                rule_id=spec.id,
                kind=spec.kind,
                level=match.level or spec.level,
                path=relative,
                line=match.line,
                column=match.column,
                message=f"{spec.title}: {shown}",
                shown=shown,
                fingerprint=fingerprint(spec.id, match.value),
            )
        )
    return findings
