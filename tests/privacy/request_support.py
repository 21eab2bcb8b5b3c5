"""Test doubles and fixtures' parts for data-subject requests.

The lineage index, the identifier normaliser and the receipts module are
written by other helpers of issue 20; until they are on main these doubles
stand in for exactly the interfaces the brief fixed (``LineageIndex.find``,
``systems``, ``erase``; ``SubjectHasher.digest``; ``normalise``;
``Statement``/``SystemOutcome``/``statement_digest``/``build_receipt``).
Where the real module can be imported it is used instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import importlib
import json
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.privacy.connectors import Action, Connector, ConnectorAnswer, ConnectorError

MANIFEST = """\
version: 1
organisation: {controller: {name: Example GmbH, contact: privacy@example.com, country: DE}}
systems:
  erp:
    url: "https://erp.internal:9443"
    location: DE
    privacy: {webhook: {url: "https://erp.internal:9443/privacy"}}
  crm:
    url: "https://crm.example.com"
    location: US
    privacy:
      sql:
        database: "secret://crm/privacy-db"
        access: "SELECT email FROM customers WHERE email = :subject"
  billing: {url: "https://billing.example.com", location: DE}
  phones:
    url: "https://phones.example.com"
    location: DE
    privacy: {webhook: {url: "https://phones.example.com/dsr"}, kinds: [phone]}
roles:
  order-reader: {scopes: [orders.read]}
clients:
  order-sync: {auth: [oauth2], roles: [order-reader]}
integrations:
  order-sync:
    source: erp
    target: crm
    client: order-sync
    purpose: Sync confirmed orders to CRM
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: P90D
    transfer: {destination: US, safeguard: SCC}
    subjects: [{kind: email, in: request, json: /customer/email}]
    routes:
      - {method: GET, path: "/orders/{id}", upstream: erp, scope: orders.read,
         subjects: [{kind: customer_id, in: path, param: id}]}
"""


def manifest(tmp_path: Path, text: str = MANIFEST) -> Manifest:
    """``text`` written and loaded as the manifest."""
    path = tmp_path / "interlock.yaml"
    path.write_text(text)
    return load_manifest(path)


class Hasher:
    """An HMAC-SHA256 of kind and value, as ``SubjectHasher.digest`` computes it."""

    def __init__(self, key: bytes = b"k" * 32) -> None:
        self._key = key

    def digest(self, kind: str, normalised: str) -> bytes:
        """The keyed hash."""
        return hmac.new(self._key, f"{kind}\0{normalised}".encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class Record:
    """One lineage row, as ``LineageIndex.find`` returns it (the fields requests read)."""

    receiver: str
    integration: str
    audit_index: int | None


@dataclass
class Lineage:
    """A lineage index in memory: subject hash -> records."""

    rows: dict[bytes, list[Record]] = field(default_factory=dict)
    erased: list[bytes] = field(default_factory=list)

    def add(self, subject: bytes, receiver: str, integration: str, audit_index: int | None) -> None:
        """Record that ``receiver`` got the subject's data."""
        self.rows.setdefault(subject, []).append(Record(receiver, integration, audit_index))

    def find(self, subject: bytes) -> list[Record]:
        """The subject's records."""
        return list(self.rows.get(subject, []))

    def systems(self, subject: bytes) -> dict[str, frozenset[str]]:
        """Receiving system -> integrations."""
        found: dict[str, set[str]] = {}
        for record in self.rows.get(subject, []):
            found.setdefault(record.receiver, set()).add(record.integration)
        return {name: frozenset(names) for name, names in found.items()}

    def erase(self, subject: bytes) -> int:
        """Forget the subject."""
        self.erased.append(subject)
        return len(self.rows.pop(subject, []))


def _normalise(kind: str, value: str, *, region: str | None = None) -> str:
    value = value.strip()
    if not value or len(value) > 256 or any(ord(c) < 32 for c in value):
        raise ValueError("the identifier is empty, too long or has control characters")
    if kind == "email":
        if value.count("@") != 1:
            raise ValueError("an email address has exactly one @")
        return value.lower()
    return value


@dataclass(frozen=True)
class _SystemOutcome:
    system: str
    connector: str
    status: str
    records: int | None
    answer_digest: str | None
    error: str | None
    asked_index: int | None
    answered_index: int | None


@dataclass(frozen=True)
class _Statement:
    request_id: str
    kind: str
    subject_kind: str
    created: datetime
    deadline: datetime
    closed: datetime
    outcome: str
    extension_reason: str | None
    systems: tuple[_SystemOutcome, ...]
    created_index: int | None
    trace_indexes: tuple[int, ...]


def _statement_json(statement: _Statement) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(statement), default=str))  # type: ignore[no-any-return]


def _statement_digest(statement: _Statement) -> str:
    canonical = json.dumps(_statement_json(statement), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _build_receipt(statement: _Statement, evidence: Any, closed_index: int) -> dict[str, Any]:
    return {
        "statement": _statement_json(statement),
        "statement_digest": _statement_digest(statement),
        "closed_index": closed_index,
        "evidence": evidence.as_json(),
    }


def install_stand_ins() -> None:
    """Make ``interlock.gdpr.identifiers`` and ``interlock.privacy.receipts`` importable.

    The real modules win when they exist; otherwise minimal stand-ins with the
    brief's signatures are registered in ``sys.modules``.
    """
    stand_ins: dict[str, dict[str, object]] = {
        "interlock.gdpr.identifiers": {"normalise": _normalise},
        "interlock.privacy.receipts": {
            "Statement": _Statement,
            "SystemOutcome": _SystemOutcome,
            "statement_digest": _statement_digest,
            "build_receipt": _build_receipt,
        },
    }
    for name, members in stand_ins.items():
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            module = types.ModuleType(name)
            for attribute, value in members.items():
                setattr(module, attribute, value)
            sys.modules[name] = module


@dataclass
class Scripted:
    """A connector whose answers a test scripts; remembers every call."""

    script: list[ConnectorAnswer | BaseException] = field(default_factory=list)
    calls: list[tuple[str, str, str, str, dict[str, str] | None]] = field(default_factory=list)
    during: Callable[[], None] | None = None

    def ask(
        self,
        action: Action,
        request_id: str,
        subject_kind: str,
        identifier: str,
        corrections: Mapping[str, str] | None,
    ) -> ConnectorAnswer:
        """The next scripted answer, or ``done`` with one record."""
        self.calls.append(
            (
                action,
                request_id,
                subject_kind,
                identifier,
                dict(corrections) if corrections else None,
            )
        )
        if self.during is not None:
            self.during()
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, BaseException):
                raise step
            return step
        data = {"email": identifier} if action in {"access", "export"} else None
        return ConnectorAnswer("done", 1, data)


def factory(connectors: Mapping[str, Connector]) -> Callable[[str], Connector]:
    """A connector factory over fixed connectors."""

    def build(name: str) -> Connector:
        return connectors[name]

    return build


def retryable(message: str = "the webhook answered HTTP 503") -> ConnectorError:
    """A failure a later attempt may overcome."""
    return ConnectorError(message, retryable=True)


class Crash(BaseException):
    """Raised by a connector to stand for the process dying mid-call."""


class _StandInIndex(Lineage):
    """``LineageIndex(engine, hasher)`` for the CLI: empty, closable."""

    def __init__(self, engine: object, hasher: object, **_: object) -> None:
        super().__init__()

    def close(self) -> None:
        """Nothing to release."""


def lineage_stand_in() -> types.ModuleType | None:
    """A stand-in ``interlock.privacy.lineage`` module, or None when the real one exists."""
    try:
        importlib.import_module("interlock.privacy.lineage")
    except ModuleNotFoundError:
        module = types.ModuleType("interlock.privacy.lineage")
        module.load_subject_hasher = lambda engine, keyring: Hasher()  # type: ignore[attr-defined]
        module.LineageIndex = _StandInIndex  # type: ignore[attr-defined]
        return module
    return None
