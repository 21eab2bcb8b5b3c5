"""AS2 partner profiles: weak algorithms and unsafe settings refused where they are written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from interlock.check.run import run_check
from interlock.errors import ConfigError
from interlock.files.as2_profile import as2_flow
from interlock.testing.clock import ManualClock
from tests.check.conftest import by_item
from tests.config.manifests import check
from tests.config.test_files_manifest import FILES
from tests.files.as2_support import INTEGRATION, Keys, manifest, vault, write_crl

_AS2 = (
    "    as2:\n      as2_id: ACME\n      our_id: EXAMPLE\n"
    "      url: https://as2.acme.example/as2\n      certificate: file:/etc/acme.pem\n"
    "      our_key: secret://acme/as2-key\n      our_certificate: file:/etc/ours.pem\n"
)


@pytest.mark.parametrize(
    ("setting", "field", "fragment"),
    [
        ("encryption: 3des", "encryption", "3DES is a weak algorithm"),
        ("encryption: des-ede3-cbc", "encryption", "weak algorithm"),
        ("encryption: rc2-40", "encryption", "RC2 is a weak algorithm"),
        ("signing: rsa-pkcs1-sha1", "signing", "SHA-1 is a weak algorithm"),
        ("signing: rsa-md5", "signing", "MD5 is a weak algorithm"),
        ("key_transport: rsa-none", "key_transport", None),
        ("compress: sideways", "compress", "before-signing"),
        ("mdn: async", "", "mdn_url"),
        ("our_key: '-----BEGIN PRIVATE KEY-----'", "our_key", "reference"),
        ("ca: none", "ca", "cannot switch certificate verification off"),
    ],
)
def test_a_weak_or_unsafe_profile_is_refused_at_its_line(
    tmp_path: Path, setting: str, field: str, fragment: str | None
) -> None:
    """Each mistake is an error located at the setting (or the profile) that holds it."""
    name = setting.split(":", 1)[0]
    profile = "".join(
        line + "\n" for line in _AS2.splitlines() if not line.strip().startswith(name + ":")
    )
    text = FILES.replace("    drop:\n", profile + f"      {setting}\n    drop:\n")
    report = check(tmp_path, text)
    path = "partners.acme.as2" + (f".{field}" if field else "")
    matching = [d.message for d in report.errors if d.path == path]
    assert matching, [(d.path, d.message) for d in report.errors]
    if fragment is not None:
        assert fragment in matching[0]


def test_a_short_rsa_key_is_refused_naming_the_setting(keys: Keys) -> None:
    """A partner certificate of RSA 1024 bits: refused when the profile is loaded."""
    from datetime import timedelta

    from interlock.crypto.pkix import certificate_pem, self_signed_ca
    from tests.files.as2_support import _rsa_certificate

    ca, ca_key = self_signed_ca("Short CA", timedelta(days=1))
    short, _ = _rsa_certificate(ca, ca_key, "ACME AS2", bits=1024)
    (keys.folder / "short.pem").write_bytes(certificate_pem(short))
    loaded = manifest(keys, partner={"certificate": "file:short.pem"})
    with pytest.raises(ConfigError, match=r"partners\.acme\.as2\.certificate: RSA key of 1024"):
        as2_flow(loaded, INTEGRATION, resolve=vault(keys), anchors={}, base=keys.folder)


def test_our_key_must_match_our_certificate(keys: Keys) -> None:
    """The vault's key is not our certificate's: refused before anything is sent or received."""
    loaded = manifest(keys, partner={"our_certificate": "file:acme.pem"})
    with pytest.raises(ConfigError, match="our_key"):
        as2_flow(loaded, INTEGRATION, resolve=vault(keys), anchors={}, base=keys.folder)


@pytest.mark.parametrize(
    ("partner", "status", "fragment"),
    [
        ({"crl": "file:crl-check.pem"}, "pass", "not revoked"),
        ({}, "needs_evidence", "neither a CRL nor an OCSP responder"),
        ({"ocsp": "http://ocsp.acme.example"}, "pass", "ocsp http://ocsp.acme.example"),
        ({"crl": "file:crl-check.pem", "revocation": "none"}, "invalid", "contradicts"),
        ({"certificate": "file:expired.pem", "crl": "file:crl-check.pem"}, "fail", "expired"),
    ],
)
def test_check_reads_the_certificates_it_is_shown(
    keys: Keys, partner: dict[str, str], status: str, fragment: str
) -> None:
    """``interlock check`` looks at the certificate files: expired fails, no CRL needs evidence."""
    write_crl(keys, "crl-check.pem")
    if status == "invalid":
        with pytest.raises(ConfigError, match=fragment):
            manifest(keys, partner=partner)
        return
    manifest(keys, partner=partner)
    findings = by_item(run_check(keys.folder / "interlock.yaml"), INTEGRATION)
    for item in ("certificates_validated", "type.b2b_edi.partner_certificates"):
        assert findings[item].status == status, (item, findings[item].reason)
        assert fragment in findings[item].reason


def test_check_decides_a_certificates_expiry_on_the_clock_it_is_given(keys: Keys) -> None:
    """The partner certificate is valid today; on a clock ten years on it has expired."""
    write_crl(keys, "crl-check.pem")
    manifest(keys, partner={"crl": "file:crl-check.pem"})
    path = keys.folder / "interlock.yaml"
    assert by_item(run_check(path), INTEGRATION)["certificates_validated"].status == "pass"
    later = ManualClock(datetime.now(UTC) + timedelta(days=3650))
    findings = by_item(run_check(path, now=later), INTEGRATION)
    assert findings["certificates_validated"].status == "fail"
    assert "expired" in findings["certificates_validated"].reason
