"""The fideslang taxonomy as the manifest sees it, and the GDPR special categories."""

from __future__ import annotations

import pytest

from interlock.gdpr.taxonomy import (
    ART9_CATEGORIES,
    ART10_CATEGORIES,
    data_categories,
    data_subjects,
    special_kind,
    unknown_category,
    unknown_subject,
)


def test_every_listed_special_category_is_a_fideslang_key() -> None:
    """A fideslang release that renames a special key fails here, not silently."""
    assert data_categories() >= ART9_CATEGORIES | ART10_CATEGORIES


def test_known_keys_pass() -> None:
    """Keys of the default taxonomy are accepted."""
    assert unknown_category("user.contact.email") is None
    assert unknown_category("system.operations") is None
    assert unknown_subject("customer") is None
    assert "employee" in data_subjects()


def test_unknown_keys_name_the_closest() -> None:
    """A typo is answered with the key meant."""
    message = unknown_category("user.contact.emial")
    assert message is not None
    assert "did you mean 'user.contact.email'" in message
    message = unknown_subject("employe")
    assert message is not None
    assert "'employee'" in message


def test_a_key_far_from_any_gets_no_guess() -> None:
    """No did-you-mean when nothing is close."""
    message = unknown_category("zzzz")
    assert message is not None
    assert "did you mean" not in message


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("user.health_and_medical", "art9"),
        ("user.health_and_medical.genetic", "art9"),
        ("user.biometric.retinal", "art9"),
        ("user.authorization.biometric", "art9"),
        ("user.demographic.political_opinion", "art9"),
        ("user.demographic.race_ethnicity", "art9"),
        ("user.criminal_history", "art10"),
        ("user.demographic.gender", None),
        ("user.contact.email", None),
        ("user.biometricish", None),
    ],
)
def test_special_kind(key: str, kind: str | None) -> None:
    """A key is special when it is a listed key or below one, never by prefix alone."""
    assert special_kind(key) == kind
