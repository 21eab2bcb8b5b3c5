"""The checklist: the 13 items every integration must pass, with their mappings.

The items are the seed's checklist, in its order. Each has a stable id (used
in waivers, JSON and SARIF rule ids), a title, a severity (what ``--fail-on``
compares) and what it maps to in OWASP ASVS 5.0 and the OWASP API Security
Top 10 (2023). Type-specific mitigations (messaging, file transfer, shared
database, event streaming, B2B EDI) are added per integration type by
:mod:`interlock.check.types`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from interlock.check.results import Severity

__all__ = ["ITEMS", "Item", "item"]


@dataclass(frozen=True)
class Item:
    """One checklist item."""

    id: str
    title: str
    severity: Severity
    description: str
    asvs: tuple[str, ...] = ()  # OWASP ASVS 5.0 requirement ids, e.g. "V6.2.1"
    api_top10: tuple[str, ...] = ()  # OWASP API Security Top 10 2023 ids, e.g. "API2:2023"


ITEMS: Final[tuple[Item, ...]] = (
    Item("authentication", "Authentication between systems", "high",
         "Every route requires an authenticated client (mTLS, OAuth 2.0 or API key)."),
    Item("least_privilege", "Least-privilege service account", "high",
         "The integration's clients hold only the scopes its routes require."),
    Item("secrets_manager", "Credentials in a secrets manager", "high",
         "Outbound credentials are secret:// references resolved from the vault."),
    Item("tls_required", "TLS required", "high",
         "Every hop uses TLS 1.2 or later (1.3 preferred)."),
    Item("certificates_validated", "Certificates validated", "high",
         "Peers' certificates are verified against a named trust anchor, host names checked."),
    Item("encryption_at_rest", "Encryption at rest", "medium",
         "Stored secrets and records are sealed with the keyring (or an HSM) key."),
    Item("minimisation", "Data minimisation", "medium",
         "Routes carrying personal data pass only the fields the purpose needs."),
    Item("input_validation", "Input validation", "high",
         "Bodies and parameters are validated at the boundary (schemas, types, limits)."),
    Item("rate_limiting", "Rate limiting", "medium",
         "Every route has rate limits (per client, address, route or integration)."),
    Item("sanitised_errors", "Sanitised errors", "medium",
         "Errors reach callers as problem documents without internal detail."),
    Item("flows_documented", "Personal-data flows documented", "medium",
         "The integration's GDPR facts make a complete Art. 30 record."),
    Item("audit_trail", "Audit trail for sensitive flows", "high",
         "Requests carrying personal data are recorded durably on the tamper-evident log."),
    Item("retention", "Retention on queues and logs", "low",
         "Data kept for the integration (logs, queues, idempotency records) has a retention."),
)  # fmt: skip

_BY_ID: Final = {i.id: i for i in ITEMS}


def item(item_id: str) -> Item:
    """The item ``item_id`` (a checklist item, or a ``type.*`` one); KeyError when unknown."""
    if item_id.startswith("type."):
        from interlock.check.types import TYPE_ITEMS  # here: types imports Item

        return {i.id: i for i in TYPE_ITEMS}[item_id]
    return _BY_ID[item_id]
