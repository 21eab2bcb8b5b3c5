"""Test parts for data-subject requests: scripted connectors and a real lineage index.

The lineage index and its keyed hashes are the real ones (``interlock.privacy.lineage``)
on the test's store; only the systems' connectors are scripted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.crypto import Keyring
from interlock.privacy.connectors import Action, Connector, ConnectorAnswer, ConnectorError
from interlock.privacy.lineage import (
    LineageIndex,
    LineageRecord,
    SubjectHasher,
    load_subject_hasher,
)

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


def open_lineage(engine: Engine, keyring: Keyring) -> tuple[LineageIndex, SubjectHasher]:
    """The deployment's real lineage index and hasher (close the index afterwards)."""
    hasher = load_subject_hasher(engine, keyring)
    return LineageIndex(engine, hasher), hasher


def seen(
    lineage: LineageIndex,
    subject: bytes,
    receiver: str,
    *,
    integration: str = "order-sync",
    audit_index: int | None = None,
    sender: str | None = None,
) -> None:
    """The lineage index records that ``receiver`` got the person's data from ``sender``.

    Without a sender the flow's both ends are ``receiver`` (the system alone holds it).
    """
    moment = datetime.now(UTC)
    lineage.record_later(
        [
            LineageRecord(
                subject=subject,
                kind="email",
                integration=integration,
                route="GET /customers/{id}",
                direction="response",
                receiver=receiver,
                source=sender or receiver,
                target=receiver,
                categories=("user.contact.email",),
                receiver_country=None,
                time=moment,
                audit_index=audit_index,
                correlation_id=None,
                expires_at=moment + timedelta(days=90),
            )
        ]
    )
    lineage.flush()


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
