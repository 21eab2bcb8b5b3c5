"""Waivers: accepted exceptions to the checklist, each with a reason, an owner and an expiry.

The baseline file is YAML, read with the manifest's safe reader
(:mod:`interlock.config.yaml_source`: no tags, aliases or duplicate keys)::

    waivers:
      - item: minimisation
        integration: analytics-feed
        reason: the warehouse API returns no personal fields; allow-list due in Q2
        owner: data-platform@example.com
        expires: 2027-03-31

A waived failure keeps its ``fail`` status and carries the waiver (it no
longer counts against ``--fail-on``). ``expires`` is at most a year ahead. A
waiver is valid through its ``expires`` day; after that the finding counts again and says the waiver
expired. A malformed file is refused whole, with one line naming the file,
line and field: a half-read baseline would silently waive or un-waive items.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Final, NoReturn

from interlock.check.items import ITEMS
from interlock.check.results import Finding, Waiver
from interlock.check.types import TYPE_ITEMS
from interlock.config.manifest import NAME_PATTERN
from interlock.config.yaml_source import DocPath, YamlDocument, YamlSourceError, read_yaml
from interlock.errors import ConfigError

__all__ = ["WaiverFileError", "a_year_after", "apply_waivers", "load_waivers"]

_FIELDS: Final = ("item", "integration", "reason", "owner", "expires")
_KNOWN_ITEMS: Final = frozenset(i.id for i in (*ITEMS, *TYPE_ITEMS))
_NAME: Final = re.compile(NAME_PATTERN)
_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class WaiverFileError(ConfigError):
    """The waiver file cannot be used; the message is ``FILE:LINE:COL: field: problem``."""

    code = "waivers_invalid"


def load_waivers(path: Path, *, today: date) -> list[Waiver]:
    """Every waiver in ``path``; :class:`WaiverFileError` for the first problem found.

    ``expires`` may be at most a year after ``today`` (:func:`a_year_after`).
    """
    try:
        document = read_yaml(path)
    except YamlSourceError as exc:
        problem = exc.problem
        raise WaiverFileError(
            f"{path}:{problem.line}:{problem.column}: {problem.message}"
        ) from None
    if document.problems:
        first = document.problems[0]
        raise WaiverFileError(f"{path}:{first.line}:{first.column}: {first.message}")
    data = document.data
    entries = data.get("waivers") if isinstance(data, dict) else None
    if not isinstance(data, dict) or set(data) != {"waivers"} or not isinstance(entries, list):
        _fail(path, document, (), "a waiver file is a mapping with one key, waivers: a list")
    latest = a_year_after(today)
    return [_waiver(path, document, index, entry, latest) for index, entry in enumerate(entries)]


def _waiver(path: Path, document: YamlDocument, index: int, entry: object, latest: date) -> Waiver:
    at: DocPath = ("waivers", index)
    if not isinstance(entry, dict):
        _fail(path, document, at, f"a waiver is a mapping of {', '.join(_FIELDS)}")
    for key in entry:
        if key not in _FIELDS:
            _fail(path, document, (*at, key), f"unknown field; a waiver has {', '.join(_FIELDS)}")
    values: dict[str, str] = {}
    for key in _FIELDS:
        value = entry.get(key)
        if not isinstance(value, str) or not value.strip():
            _fail(path, document, (*at, key) if key in entry else at, f"{key} is required (text)")
        values[key] = value.strip()
    if values["item"] not in _KNOWN_ITEMS:
        _fail(path, document, (*at, "item"), f"unknown item {values['item']!r}")
    if not _NAME.match(values["integration"]):
        _fail(path, document, (*at, "integration"), "not an integration name")
    expires = _date(values["expires"])
    if expires is None:
        _fail(path, document, (*at, "expires"), "expires is a date, YYYY-MM-DD")
    if expires > latest:
        _fail(
            path,
            document,
            (*at, "expires"),
            f"expires is at most a year ahead ({latest.isoformat()}): a waiver is reviewed "
            "and renewed, never open-ended",
        )
    return Waiver(values["item"], values["integration"], values["reason"], values["owner"], expires)


def a_year_after(today: date) -> date:
    """The latest ``expires`` a waiver may name: the same date next year (1 March for
    29 February). A later one (9999-12-31) would silence a failure for good."""
    try:
        return today.replace(year=today.year + 1)
    except ValueError:  # 29 February
        return date(today.year + 1, 3, 1)


def _date(text: str) -> date | None:
    if not _DATE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _fail(path: Path, document: YamlDocument, at: DocPath, message: str) -> NoReturn:
    line, column = document.position(at, key=True)
    field = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in at).replace(".[", "[")
    raise WaiverFileError(f"{path}:{line}:{column}: {field or 'waivers'}: {message}")


def apply_waivers(findings: list[Finding], waivers: list[Waiver], today: date) -> list[Finding]:
    """``findings`` with each failure a waiver covers marked waived; expired waivers said so.

    Only failures are waived; a waiver for an item that passes changes nothing.
    """
    by_key = {(w.item, w.integration): w for w in waivers}
    result: list[Finding] = []
    for finding in findings:
        waiver = by_key.get((finding.item, finding.integration or ""))
        if finding.status != "fail" or waiver is None:
            result.append(finding)
        elif waiver.expires < today:
            result.append(
                replace(
                    finding,
                    reason=f"{finding.reason} (the waiver by {waiver.owner} expired on "
                    f"{waiver.expires.isoformat()})",
                )
            )
        else:
            result.append(replace(finding, waiver=waiver))
    return result
