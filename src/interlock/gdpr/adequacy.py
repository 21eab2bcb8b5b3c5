"""Third countries with an EU adequacy decision (GDPR Art. 45), as data.

Source: European Commission, "Adequacy decisions" (commission.europa.eu, Law >
Data protection > International dimension of data protection); compiled
from the decisions' Official Journal references (the United Kingdom's renewal
of 19 December 2025 confirmed on 2026-12-05), not scraped from the page:
check it against the page when updating. Each entry names the decision in
force and the date it was adopted;
the decisions of the 95/46/EC era stay in force under Art. 45(9) and were
reviewed on 15 January 2024. A decision can be partial: Canada's covers only
organisations under PIPEDA, the United States' (EU-US Data Privacy Framework)
only organisations certified under it, which is why a US transfer on adequacy
must say ``dpf_certified: true``. Update this table when the Commission adopts,
renews or withdraws a decision, and say so in the CHANGELOG.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

__all__ = ["ADEQUACY", "EEA", "SOURCE", "AdequacyDecision", "adequacy_decision"]

SOURCE: Final = (
    "https://commission.europa.eu/law/law-topic/data-protection/"
    "international-dimension-data-protection/adequacy-decisions_en"
)
"""Where the list comes from."""

EEA: Final = frozenset(
    {
        *("AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE"),
        *("IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"),
        *("IS", "LI", "NO"),
    }
)
"""EU member states plus Iceland, Liechtenstein and Norway: data moving among them
is not a transfer to a third country (GDPR Chapter V), and needs no decision."""


@dataclass(frozen=True)
class AdequacyDecision:
    """One Commission adequacy decision: for which country, which act, adopted when."""

    country: str  # ISO 3166-1 alpha-2
    name: str
    decision: str
    adopted: date
    # Set when the decision covers only some recipients (the transfer must say so).
    scope: str | None = None


ADEQUACY: Final[dict[str, AdequacyDecision]] = {
    d.country: d
    for d in (
        AdequacyDecision("AD", "Andorra", "Decision 2010/625/EU", date(2010, 10, 19)),
        AdequacyDecision("AR", "Argentina", "Decision 2003/490/EC", date(2003, 6, 30)),
        AdequacyDecision(
            "CA",
            "Canada",
            "Decision 2002/2/EC",
            date(2001, 12, 20),
            scope="commercial organisations subject to PIPEDA",
        ),
        AdequacyDecision("CH", "Switzerland", "Decision 2000/518/EC", date(2000, 7, 26)),
        AdequacyDecision("FO", "Faroe Islands", "Decision 2010/146/EU", date(2010, 3, 5)),
        AdequacyDecision(
            "GB",
            "United Kingdom",
            "Implementing Decision (EU) 2021/1772, renewed",
            date(2025, 12, 19),
        ),
        AdequacyDecision("GG", "Guernsey", "Decision 2003/821/EC", date(2003, 11, 21)),
        AdequacyDecision("IL", "Israel", "Decision 2011/61/EU", date(2011, 1, 31)),
        AdequacyDecision("IM", "Isle of Man", "Decision 2004/411/EC", date(2004, 4, 28)),
        AdequacyDecision("JE", "Jersey", "Decision 2008/393/EC", date(2008, 5, 8)),
        AdequacyDecision(
            "JP",
            "Japan",
            "Implementing Decision (EU) 2019/419",
            date(2019, 1, 23),
            scope="private-sector organisations under the APPI",
        ),
        AdequacyDecision(
            "KR", "Republic of Korea", "Implementing Decision (EU) 2022/254", date(2021, 12, 17)
        ),
        AdequacyDecision("NZ", "New Zealand", "Decision 2013/65/EU", date(2012, 12, 19)),
        AdequacyDecision(
            "US",
            "United States",
            "Implementing Decision (EU) 2023/1795 (EU-US Data Privacy Framework)",
            date(2023, 7, 10),
            scope="organisations certified under the EU-US Data Privacy Framework",
        ),
        AdequacyDecision("UY", "Uruguay", "Decision 2012/484/EU", date(2012, 8, 21)),
    )
}
"""The adequacy decisions in force, by country."""


def adequacy_decision(country: str) -> AdequacyDecision | None:
    """The decision covering ``country``, or None when it has none."""
    return ADEQUACY.get(country)
