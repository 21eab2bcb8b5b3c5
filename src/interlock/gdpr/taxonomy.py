"""Data categories and data subjects: the fideslang taxonomy, and GDPR special categories.

The keys a manifest may name are those of fideslang's default taxonomy (the
``fideslang`` package, the language Fides and other privacy tools share), so a
register built from the manifest speaks the same vocabulary as theirs. An
unknown key is refused with the closest known one.

fideslang marks no data category as special (its ``processes_special_category_data``
is a flag on a whole system), so the GDPR Art. 9(1) and Art. 10 categories are
listed here, as the fideslang keys whose data they are. A key is special when it
is one of them or lies below one.
"""

from __future__ import annotations

import difflib
from functools import cache
from typing import Final, Literal

from fideslang.default_taxonomy import DEFAULT_TAXONOMY

__all__ = [
    "ART9_CATEGORIES",
    "ART10_CATEGORIES",
    "SpecialKind",
    "data_categories",
    "data_subjects",
    "special_kind",
    "unknown_category",
    "unknown_subject",
]

SpecialKind = Literal["art9", "art10"]

#: GDPR Art. 9(1): racial or ethnic origin, political opinions, religious or
#: philosophical beliefs, genetic data, biometric data for unique identification,
#: health, sex life or sexual orientation. (Trade-union membership has no
#: fideslang key; declare it under a custom category when fideslang adds one.)
ART9_CATEGORIES: Final = frozenset(
    {
        "user.demographic.race_ethnicity",
        "user.demographic.political_opinion",
        "user.demographic.religious_belief",
        "user.demographic.sexual_orientation",
        "user.health_and_medical",  # includes .genetic (Art. 4(13)) and record ids
        "user.biometric",  # Art. 4(14): fingerprint, retinal, voice, biometric health
        "user.authorization.biometric",
    }
)

#: GDPR Art. 10: personal data relating to criminal convictions and offences.
ART10_CATEGORIES: Final = frozenset({"user.criminal_history"})


@cache
def data_categories() -> frozenset[str]:
    """Every data category key of fideslang's default taxonomy."""
    return frozenset(item.fides_key for item in DEFAULT_TAXONOMY.data_category)


@cache
def data_subjects() -> frozenset[str]:
    """Every data subject key of fideslang's default taxonomy."""
    return frozenset(item.fides_key for item in DEFAULT_TAXONOMY.data_subject)


def unknown_category(key: str) -> str | None:
    """Why ``key`` is not a data category (with the closest keys), or None when it is."""
    return _unknown(key, data_categories(), "data category")


def unknown_subject(key: str) -> str | None:
    """Why ``key`` is not a data subject (with the closest keys), or None when it is."""
    return _unknown(key, data_subjects(), "data subject")


def special_kind(key: str) -> SpecialKind | None:
    """``art9`` or ``art10`` when ``key`` names special-category data, else None."""
    if _within(key, ART10_CATEGORIES):
        return "art10"
    if _within(key, ART9_CATEGORIES):
        return "art9"
    return None


def _within(key: str, roots: frozenset[str]) -> bool:
    return any(key == root or key.startswith(root + ".") for root in roots)


def _unknown(key: str, known: frozenset[str], noun: str) -> str | None:
    if key in known:
        return None
    close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {noun} {key!r}: not in the fideslang taxonomy{hint}"
