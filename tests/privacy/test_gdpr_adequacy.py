"""The table of EU adequacy decisions (GDPR Art. 45)."""

from __future__ import annotations

import re
from datetime import date

from interlock.gdpr.adequacy import ADEQUACY, EEA, SOURCE, adequacy_decision


def test_the_table_is_well_formed() -> None:
    """ISO codes, keyed by their own country, adopted in the past, none in the EEA."""
    for country, decision in ADEQUACY.items():
        assert re.fullmatch(r"[A-Z]{2}", country)
        assert decision.country == country
        assert decision.adopted <= date(2026, 12, 5)
        assert country not in EEA
        assert decision.decision


def test_the_us_decision_is_limited_to_certified_recipients() -> None:
    """The Data Privacy Framework covers certified organisations only."""
    us = adequacy_decision("US")
    assert us is not None
    assert us.scope is not None
    assert "certified" in us.scope
    assert us.adopted == date(2023, 7, 10)


def test_a_country_without_a_decision_has_none() -> None:
    """India, China and Brazil have no adequacy decision."""
    for country in ("IN", "CN", "BR"):
        assert adequacy_decision(country) is None


def test_the_source_is_the_commission_page() -> None:
    """Where the list was read is recorded with it."""
    assert SOURCE.startswith("https://commission.europa.eu/")
