"""The GDPR register facts of the manifest (issue 19 items 1 and 2).

Organisation, role, recipients, fideslang categories, Art. 9/10 special
categories, and transfers: adequacy only where the Commission decided it, the
US only for DPF-certified recipients, derogations naming their Art. 49(1) point.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.cli.main import main
from tests.config.manifests import VALID, assert_error_after_edit, check, messages
from tests.conftest import isolate_cli

FLOW = "integrations.order-sync"


def test_the_valid_manifest_declares_its_organisation(tmp_path: Path) -> None:
    """The shared valid manifest passes with an organisation and no warning."""
    report = check(tmp_path, VALID)
    assert report.ok, messages(report)
    assert report.warnings == ()
    assert report.manifest is not None
    assert report.manifest.organisation is not None
    assert report.manifest.organisation.controller.name == "Example GmbH"


def test_unknown_data_category_is_refused_with_did_you_mean(tmp_path: Path) -> None:
    """A key outside the fideslang taxonomy is refused at its place, naming the closest key."""
    assert_error_after_edit(
        tmp_path,
        "[user.contact.email]",
        "[user.contact.emial]",
        f"{FLOW}.data_categories[0]",
        "did you mean 'user.contact.email'",
    )


def test_a_key_that_only_matches_the_old_regex_is_refused(tmp_path: Path) -> None:
    """user.financial.transaction looks like a key but is not one in fideslang."""
    assert_error_after_edit(
        tmp_path,
        "[user.contact.email]",
        "[user.financial.transaction]",
        f"{FLOW}.data_categories[0]",
        "not in the fideslang taxonomy",
    )


def test_unknown_data_subject_is_refused_with_did_you_mean(tmp_path: Path) -> None:
    """Data subjects are fideslang keys too."""
    assert_error_after_edit(
        tmp_path,
        "data_subjects: [customer]",
        "data_subjects: [customers]",
        f"{FLOW}.data_subjects[0]",
        "did you mean 'customer'",
    )


@pytest.mark.parametrize(
    "category",
    [
        "user.health_and_medical",
        "user.health_and_medical.genetic",
        "user.biometric.fingerprint",
        "user.demographic.religious_belief",
        "user.demographic.sexual_orientation",
    ],
)
def test_special_category_without_art9_condition_is_refused(tmp_path: Path, category: str) -> None:
    """GDPR Art. 9(1) data needs a condition of Art. 9(2)."""
    assert_error_after_edit(
        tmp_path,
        "[user.contact.email]",
        f"[user.contact.email, {category}]",
        f"{FLOW}.data_categories[1]",
        "Art. 9(2)",
    )


def test_special_category_with_its_condition_is_accepted(tmp_path: Path) -> None:
    """special_category_condition (Art. 9(2)(a)-(j)) lifts the refusal."""
    text = VALID.replace(
        "data_categories: [user.contact.email]",
        "data_categories: [user.contact.email, user.health_and_medical]\n"
        "    special_category_condition: explicit_consent",
    )
    report = check(tmp_path, text)
    assert report.ok, messages(report)


def test_special_category_condition_is_an_enum(tmp_path: Path) -> None:
    """Only the Art. 9(2) conditions are accepted."""
    assert_error_after_edit(
        tmp_path,
        "retention: P90D",
        "retention: P90D\n    special_category_condition: because",
        f"{FLOW}.special_category_condition",
        "explicit_consent",
    )


def test_criminal_records_need_their_own_basis(tmp_path: Path) -> None:
    """Art. 10 data is not lifted by an Art. 9(2) condition: it needs criminal_data_basis."""
    old = "data_categories: [user.contact.email]"
    new = (
        "data_categories: [user.criminal_history]\n    special_category_condition: explicit_consent"
    )
    assert_error_after_edit(tmp_path, old, new, f"{FLOW}.data_categories[0]", "criminal_data_basis")
    accepted = VALID.replace(
        old, "data_categories: [user.criminal_history]\n    criminal_data_basis: BZRG s. 30"
    )
    assert check(tmp_path, accepted).ok


def test_processor_role_names_the_controller(tmp_path: Path) -> None:
    """A processor or joint controller names the other party (Art. 28, 26)."""
    assert_error_after_edit(
        tmp_path, "retention: P90D", "retention: P90D\n    role: processor", FLOW, "other_party"
    )
    text = VALID.replace(
        "retention: P90D",
        "retention: P90D\n    role: joint_controller\n    other_party: Partner AG\n"
        "    recipients: [account managers]\n    security_measures: [four-eyes review]",
    )
    assert check(tmp_path, text).ok


def test_personal_data_without_organisation_is_a_warning(tmp_path: Path) -> None:
    """Without the controller the register cannot be made; the gateway still runs."""
    text = "\n".join(line for line in VALID.splitlines() if not line.startswith("organisation"))
    report = check(tmp_path, text + "\n")
    assert report.ok
    (warning,) = report.warnings
    assert "Art. 30(1)(a)" in warning.message


def test_controller_outside_the_eea_needs_a_representative(tmp_path: Path) -> None:
    """GDPR Art. 27: a controller established outside the Union names a representative."""
    assert_error_after_edit(
        tmp_path,
        "country: DE}}",
        "country: US}}",
        "organisation.controller.country",
        "Art. 27",
    )


def _transfer(tmp_path: Path, location: str, transfer: str) -> list[str]:
    text = VALID.replace("location: US}", f"location: {location}}}").replace(
        "transfer: {destination: US, safeguard: SCC}", f"transfer: {transfer}"
    )
    return messages(check(tmp_path, text))


def test_adequacy_for_a_country_without_a_decision_is_refused(tmp_path: Path) -> None:
    """India has no EU adequacy decision: adequacy is refused at the safeguard."""
    (error,) = _transfer(tmp_path, "IN", "{destination: IN, safeguard: adequacy}")
    assert f"{FLOW}.transfer: IN has no EU adequacy decision" in error


def test_adequacy_for_a_country_with_a_decision_is_accepted(tmp_path: Path) -> None:
    """Japan, Switzerland and the UK have adequacy decisions."""
    for country in ("JP", "CH", "GB"):
        assert (
            _transfer(tmp_path, country, f"{{destination: {country}, safeguard: adequacy}}") == []
        )


def test_us_adequacy_requires_dpf_certification(tmp_path: Path) -> None:
    """The EU-US Data Privacy Framework covers certified recipients only."""
    (error,) = _transfer(tmp_path, "US", "{destination: US, safeguard: adequacy}")
    assert "dpf_certified: true" in error
    certified = "{destination: US, safeguard: adequacy, dpf_certified: true}"
    assert _transfer(tmp_path, "US", certified) == []


def test_derogation_must_name_its_art49_point(tmp_path: Path) -> None:
    """Art. 49 is a list of specific derogations, not a general permission."""
    (error,) = _transfer(tmp_path, "IN", "{destination: IN, safeguard: derogation}")
    assert f"{FLOW}.transfer: a derogation must name the Art. 49(1) point" in error
    for point in ("a", "49(1)(b)", "second_subparagraph"):
        named = f"{{destination: IN, safeguard: derogation, derogation: '{point}'}}"
        assert _transfer(tmp_path, "IN", named) == []
    (error,) = _transfer(tmp_path, "IN", "{destination: IN, safeguard: SCC, derogation: a}")
    assert "only with safeguard: derogation" in error


def test_transfer_without_safeguard_is_refused(tmp_path: Path) -> None:
    """A transfer names its safeguard (Art. 46)."""
    (error,) = _transfer(tmp_path, "US", "{destination: US}")
    assert f"{FLOW}.transfer: missing required field 'safeguard'" in error


def test_location_change_that_breaks_adequacy_is_refused(tmp_path: Path) -> None:
    """Moving the target from Japan to India breaks the adequacy the transfer relies on."""
    errors = _transfer(tmp_path, "IN", "{destination: JP, safeguard: adequacy}")
    assert any("differs from the target system's location IN" in e for e in errors)


def test_validate_reports_every_privacy_error_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unknown category, special category, bad adequacy and missing safeguard: one run."""
    isolate_cli(monkeypatch, tmp_path)
    second = (
        "  other:\n"
        "    source: erp\n    target: crm\n    client: order-sync\n"
        "    purpose: Second flow\n    legal_basis: contract\n    retention: 30d\n"
        "    data_categories: [user.health_and_medical]\n"
        "    transfer: {destination: US}\n"
    )
    text = VALID.replace("[user.contact.email]", "[user.contact.emial]").replace(
        "location: US}", "location: IN}"
    ).replace("destination: US, safeguard: SCC", "destination: IN, safeguard: adequacy").replace(
        "  crm: {url",
        '  crm2: {url: "https://crm2.example.com", location: US}\n  crm: {url',
    ) + second.replace("target: crm", "target: crm2")
    path = tmp_path / "interlock.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    expected = {
        f"{FLOW}.data_categories[0]: unknown data category 'user.contact.emial'",
        f"{FLOW}.transfer: IN has no EU adequacy decision",
        "integrations.other.data_categories[0]: user.health_and_medical is special-category",
        "integrations.other.transfer: missing required field 'safeguard'",
    }
    for fragment in expected:
        line = next((x for x in out.splitlines() if fragment in x), None)
        assert line is not None, (fragment, out)
        assert line.startswith(f"{path}:")
        _, lineno, column, _ = line[len(str(path)) :].split(":", 3)
        assert int(lineno) > 0
        assert int(column) > 0
