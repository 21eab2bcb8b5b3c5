"""The checklist: the 13 items every integration must pass, with their mappings.

The items are the seed's checklist, in its order. Each has a stable id (used
in waivers, JSON and SARIF rule ids), a title, a severity (what ``--fail-on``
compares) and what it maps to in OWASP ASVS 5.0 and the OWASP API Security
Top 10 (2023). Type-specific mitigations (messaging, file transfer, shared
database, event streaming, B2B EDI) are added per integration type by
:mod:`interlock.check.types`; :func:`interlock.check.catalogue.item` finds
either kind by id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from interlock.check.results import Severity

__all__ = ["ITEMS", "Item"]


@dataclass(frozen=True)
class Item:
    """One checklist item."""

    id: str
    title: str
    severity: Severity
    description: str
    asvs: tuple[str, ...] = ()  # OWASP ASVS 5.0 requirement ids, e.g. "V6.2.1"
    api_top10: tuple[str, ...] = ()  # OWASP API Security Top 10 2023 ids, e.g. "API2:2023"


# Mappings, checked requirement by requirement against the published texts:
# - OWASP ASVS 5.0.0 (May 2025, tag v5.0.0_release of github.com/OWASP/ASVS,
#   5.0/docs_en/OWASP_Application_Security_Verification_Standard_5.0.0_en.csv):
#   requirement ids "V<chapter>.<section>.<requirement>" in 5.0's own numbering
#   (V2 validation, V6 authentication, V8 authorization, V11 cryptography,
#   V12 secure communication, V13 configuration, V14 data protection,
#   V15 secure coding, V16 logging and error handling). Four mapped requirements
#   are level 3 (V12.3.5, V13.3.4, V14.2.6, V14.2.7): an item addresses them, it
#   does not certify a level. docs/check.md gives each requirement's gist.
# - OWASP API Security Top 10 2023 (editions/2023/en of github.com/OWASP/API-Security).
ITEMS: Final[tuple[Item, ...]] = (
    Item("authentication", "Authentication between systems", "high",
         "Every route requires an authenticated client (mTLS, OAuth 2.0 or API key).",
         asvs=("V6.3.4", "V12.3.5", "V13.2.1"),
         api_top10=("API2:2023",)),
    Item("least_privilege", "Least-privilege service account", "high",
         "The integration's clients hold only the scopes its routes require.",
         asvs=("V8.1.1", "V8.2.1", "V13.2.2"),
         api_top10=("API5:2023",)),
    Item("secrets_manager", "Credentials in a secrets manager", "high",
         "Outbound credentials are secret:// references resolved from the vault.",
         asvs=("V13.3.1", "V13.3.2", "V13.3.4"),
         api_top10=("API8:2023",)),
    Item("tls_required", "TLS required", "high",
         "Every hop uses TLS 1.2 or later (1.3 preferred).",
         asvs=("V12.1.1", "V12.2.1", "V12.3.1", "V12.3.3"),
         api_top10=("API8:2023", "API10:2023")),
    Item("certificates_validated", "Certificates validated", "high",
         "Peers' certificates are verified against a named trust anchor, host names checked.",
         asvs=("V12.1.3", "V12.3.2", "V12.3.4"),
         api_top10=("API8:2023", "API10:2023")),
    Item("encryption_at_rest", "Encryption at rest", "medium",
         "Stored secrets and records are sealed with the keyring (or an HSM) key.",
         asvs=("V11.3.2", "V11.3.3", "V14.2.4"),
         api_top10=()),  # the 2023 list has no entry for storage encryption
    Item("minimisation", "Data minimisation", "medium",
         "Routes carrying personal data pass only the fields the purpose needs.",
         asvs=("V8.2.3", "V14.2.6", "V15.3.1"),
         api_top10=("API3:2023",)),
    Item("input_validation", "Input validation", "high",
         "Bodies and parameters are validated at the boundary (schemas, types, limits).",
         asvs=("V2.1.1", "V2.2.1", "V2.2.2"),
         api_top10=("API4:2023", "API10:2023")),
    Item("rate_limiting", "Rate limiting", "medium",
         "Every route has rate limits (per client, address, route or integration).",
         asvs=("V2.4.1", "V15.2.2"),
         api_top10=("API4:2023", "API6:2023")),
    Item("sanitised_errors", "Sanitised errors", "medium",
         "Errors reach callers as problem documents without internal detail.",
         asvs=("V13.4.2", "V16.5.1"),
         api_top10=("API8:2023",)),
    Item("flows_documented", "Personal-data flows documented", "medium",
         "The integration's GDPR facts make a complete Art. 30 record.",
         asvs=("V13.1.1", "V14.1.1", "V14.1.2"),
         api_top10=("API9:2023",)),
    Item("audit_trail", "Audit trail for sensitive flows", "high",
         "Requests carrying personal data are recorded durably on the tamper-evident log.",
         asvs=("V16.2.1", "V16.3.1", "V16.3.2", "V16.4.2"),
         api_top10=()),  # 2019's API10 (logging and monitoring) was dropped in 2023
    Item("retention", "Retention on queues and logs", "low",
         "Data kept for the integration (logs, queues, idempotency records) has a retention "
         "that its queues respect and its audit bodies and lineage rows are pruned by.",
         asvs=("V14.2.7", "V16.1.1"),
         api_top10=()),  # no 2023 entry covers retention
)  # fmt: skip
