"""The quarantine as an outsider attacks it: every bad file refused, audited, never processed."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.audit.errors import AuditUnavailableError
from interlock.errors import ConfigError
from interlock.files.quarantine import MAX_NAME_BYTES, Quarantine, Verdict, check_name
from tests.files.quarantine_support import GOOD_CSV, HEADER, INTEGRATION, Rig, manifest, sidecar

NAME = "orders-2025-03-01.csv"
_TRICKY = (
    "..",
    ".",
    "a/../b",
    "a\\b",
    "\u2024\u2024",
    "\u2215etc",
    "\uff0e\uff0e",
    "x\x85y",
    "\u2028",
)


def _accept(rig: Rig, name: str, data: bytes, sidecars: dict[str, bytes] | None) -> Verdict:
    return asyncio.run(rig.quarantine.accept(name, data, sidecars=sidecars))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _assert_refused_not_processed(rig: Rig, verdict: Verdict, reason: str) -> None:
    """Refused with ``reason`` among its reasons, audited as a failure, nothing in processing."""
    assert not verdict.accepted
    assert any(reason in given for given in verdict.reasons), verdict.reasons
    assert list(rig.path("processing").iterdir()) == []
    assert list(rig.path("quarantine").iterdir()) == []
    (entry,) = rig.audit.entries
    assert entry.action == "files.receive"
    assert entry.outcome.result == "failure"
    assert entry.reason is not None
    assert reason in entry.reason
    assert entry.details["sha256"] == verdict.sha256


def test_an_accepted_file_is_in_processing_byte_for_byte(tmp_path: Path) -> None:
    """Accepted: the same bytes, 0600, directories 0700, one audit entry with its volume."""
    rig = Rig(tmp_path)
    verdict = _accept(rig, NAME, GOOD_CSV, sidecar(NAME, GOOD_CSV))
    assert verdict.accepted
    assert verdict.reasons == ()
    assert (verdict.detected, verdict.records, verdict.size) == ("csv", 2, len(GOOD_CSV))
    (path,) = rig.quarantine.processing()
    assert path == rig.path("processing") / NAME
    assert path.read_bytes() == GOOD_CSV
    assert _mode(path) == 0o600
    for area in ("quarantine", "processing", "refused"):
        assert _mode(rig.path(area)) == 0o700
    assert rig.everything() == [path]  # no temporary file, nothing left in quarantine
    (entry,) = rig.audit.entries
    assert entry.actor == "partner:acme"
    assert (entry.integration, entry.source, entry.target) == (INTEGRATION, "erp", "crm")
    assert entry.data_categories == ("user.contact.email",)
    assert (entry.volume.records, entry.volume.bytes) == (2, len(GOOD_CSV))
    assert entry.outcome.result == "success"
    assert entry.reason is None
    assert entry.details == {"sha256": verdict.sha256, "file": NAME, "detected": "csv"}


def test_the_directories_are_0700_despite_the_umask(tmp_path: Path) -> None:
    """A permissive umask does not open the areas to other users."""
    previous = os.umask(0)
    try:
        rig = Rig(tmp_path)
    finally:
        os.umask(previous)
    assert _mode(rig.path("processing")) == 0o700


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../../etc/cron.d/x.csv", "path separator"),
        ("sub/orders.csv", "path separator"),
        ("..\\..\\orders.csv", "path separator"),
        ("..", "starts with a dot"),
        (".bashrc", "starts with a dot"),
        ("", "empty"),
        ("orders\x00.csv", "control"),
        ("orders\n.csv", "control"),
        ("invoice\u202evsc.exe", "control"),  # right-to-left override: shows as invoiceexe.csv
        ("orders.csv\u00a0.exe", "unusual space"),
        ("orders\u200b.csv", "invisible"),
        ("a" * (MAX_NAME_BYTES + 1), "longer than"),
        ("\u00e9" * (MAX_NAME_BYTES // 2 + 1), "longer than"),  # bytes, not characters
        ("orders.csv.reasons.json", "reserves"),
    ],
)
def test_a_bad_name_is_refused_before_anything_is_written(
    tmp_path: Path, name: str, reason: str
) -> None:
    """Traversal, hidden, control, spoofing and over-long names: refused, audited, no file."""
    rig = Rig(tmp_path)
    verdict = _accept(rig, name, GOOD_CSV, sidecar(name, GOOD_CSV))
    _assert_refused_not_processed(rig, verdict, reason)
    assert rig.everything() == []
    assert not (tmp_path / "etc").exists()
    shown = rig.audit.entries[0].details["file"]
    assert isinstance(shown, str)
    assert shown.isprintable()


@settings(max_examples=500)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from(_TRICKY))
def test_an_allowed_name_stays_in_its_directory(name: str) -> None:
    """Any name check_name allows is one plain entry of the directory it is joined to."""
    if check_name(name) is None:
        area = Path("/srv/area")
        assert (area / name).parent == area
        assert os.path.normpath(area / name) == str(area / name)
        assert name.isprintable()


def test_check_name_accepts_ordinary_names() -> None:
    """Spaces, Unicode letters, several dots and a 200-byte name are fine."""
    for name in ("Bestellungen März 2025.csv", "a.b.c.csv", "x" * MAX_NAME_BYTES, "a..b.csv"):
        assert check_name(name) is None


def test_an_oversized_file_is_refused_unparsed(tmp_path: Path) -> None:
    """Over max_size: refused with the sizes, kept in refused, never parsed or processed."""
    rig = Rig(tmp_path, max_size="1KiB")
    data = HEADER + b"1,ada@example.com,1.00\r\n" * 100
    verdict = _accept(rig, NAME, data, sidecar(NAME, data))
    _assert_refused_not_processed(rig, verdict, f"the file has {len(data)} bytes; at most 1024")
    assert verdict.reasons == (f"the file has {len(data)} bytes; at most 1024 are accepted",)
    ((kept, reasons),) = rig.quarantine.refused()
    assert kept.read_bytes() == data
    assert reasons == verdict.reasons


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (HEADER + b"1,ada@example.com,=cmd|' /C calc'!A0\r\n", "spreadsheet formula"),
        (b'[{"order_id": 1}]', "the content is json, not csv"),
        (b"PK\x03\x04" + b"\x00" * 64, "the content is binary, not csv"),
        (HEADER + b"1,ad\xffa@example.com,1\r\n", "not valid UTF-8 at byte"),
        (b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', "content is xml"),
    ],
)
def test_bad_content_is_refused_and_kept_with_reasons(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    """Formula cells, a lying extension, invalid UTF-8: refused, in refused/ with its reasons."""
    rig = Rig(tmp_path)
    verdict = _accept(rig, NAME, data, sidecar(NAME, data))
    _assert_refused_not_processed(rig, verdict, reason)
    ((kept, reasons),) = rig.quarantine.refused()
    assert kept.name == f"{verdict.sha256[:16]}-{NAME}"
    assert kept.read_bytes() == data
    assert reasons == verdict.reasons
    record = kept.with_name(kept.name + ".reasons.json")
    assert _mode(kept) == _mode(record) == 0o600
    facts = json.loads(record.read_text(encoding="utf-8"))
    assert facts["file"] == NAME
    assert facts["sha256"] == verdict.sha256


def test_an_xxe_file_is_refused_by_an_xml_integration(tmp_path: Path) -> None:
    """The XML integration's parser refuses the DOCTYPE; /etc/passwd is never read."""
    rig = Rig(tmp_path, format="xml", csv_columns=None, checksum="none")
    data = b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    verdict = _accept(rig, "orders.xml", data, None)
    _assert_refused_not_processed(rig, verdict, "DTDs are not accepted")
    assert b"root:" not in rig.quarantine.refused()[0][0].read_bytes()


def test_a_json_file_with_duplicate_keys_is_refused(tmp_path: Path) -> None:
    """{"id": 1, "id": 2} is read differently by different parsers: refused."""
    rig = Rig(tmp_path, format="json", csv_columns=None, checksum="none")
    verdict = _accept(rig, "orders.json", b'[{"id": 1, "id": 2}]', None)
    _assert_refused_not_processed(rig, verdict, "duplicate-key")


@pytest.mark.parametrize(
    ("sidecars", "reason"),
    [
        ({}, "the checksum file orders-2025-03-01.csv.sha256 is missing"),
        ({f"{NAME}.sha256": b"0" * 64 + b"  " + NAME.encode()}, "checksum does not match"),
        ({f"{NAME}.sha256": b"not a digest"}, "holds no SHA-256 hex digest"),
        ({f"{NAME}.sha256": b""}, "holds no SHA-256 hex digest"),
        ({f"{NAME}.sha256": b"a" * 5000}, "holds no SHA-256 hex digest"),
        ({"other.csv.sha256": b"0" * 64}, "is missing"),
    ],
)
def test_a_wrong_or_missing_checksum_is_refused(
    tmp_path: Path, sidecars: dict[str, bytes], reason: str
) -> None:
    """checksum sha256-sidecar: NAME.sha256 must hold the file's digest."""
    rig = Rig(tmp_path)
    verdict = _accept(rig, NAME, GOOD_CSV, sidecars)
    _assert_refused_not_processed(rig, verdict, reason)


def test_a_right_sidecar_in_upper_case_hex_passes(tmp_path: Path) -> None:
    """A digest alone, in capitals, without a name, is still the digest."""
    rig = Rig(tmp_path)
    digest = sidecar(NAME, GOOD_CSV)[f"{NAME}.sha256"].split()[0].upper()
    assert _accept(rig, NAME, GOOD_CSV, {f"{NAME}.sha256": digest + b"\n"}).accepted


def test_signed_files_need_the_partners_certificate(tmp_path: Path) -> None:
    """signature detached-cms without a signer (or AS2) certificate: no quarantine at all.

    Signed files are verified in tests/files/test_signed_files.py.
    """
    with pytest.raises(ConfigError, match="signer"):
        Rig(tmp_path, signature="detached-cms")


def test_a_name_already_in_processing_is_not_overwritten(tmp_path: Path) -> None:
    """The second file of the same name is refused; the first stays as it was."""
    rig = Rig(tmp_path)
    assert _accept(rig, NAME, GOOD_CSV, sidecar(NAME, GOOD_CSV)).accepted
    other = HEADER + b"9,mallory@example.com,0\r\n"
    verdict = _accept(rig, NAME, other, sidecar(NAME, other))
    assert verdict.reasons == ("a file of this name is already in processing",)
    assert (rig.path("processing") / NAME).read_bytes() == GOOD_CSV
    assert [entry.outcome.result for entry in rig.audit.entries] == ["success", "failure"]
    ((kept, _),) = rig.quarantine.refused()  # the second copy is kept with its reason
    assert kept.read_bytes() == other


def test_a_name_taken_while_checking_is_refused_and_audited_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process releasing the same name mid-check: no overwrite, the refusal audited."""
    rig = Rig(tmp_path)
    check = rig.quarantine.inspect

    def racing(
        data: bytes, *, name: str, sidecars: Mapping[str, bytes], waited: timedelta | None
    ) -> Verdict:
        (rig.path("processing") / name).write_bytes(b"theirs")
        return check(data, name=name, sidecars=sidecars, waited=waited)

    monkeypatch.setattr(rig.quarantine, "inspect", racing)
    verdict = _accept(rig, NAME, GOOD_CSV, sidecar(NAME, GOOD_CSV))
    assert verdict.reasons == ("a file of this name is already in processing",)
    assert (rig.path("processing") / NAME).read_bytes() == b"theirs"
    assert [entry.outcome.result for entry in rig.audit.entries] == ["success", "failure"]
    assert list(rig.path("quarantine").iterdir()) == []


def test_a_planted_symlink_in_quarantine_is_not_followed(tmp_path: Path) -> None:
    """Something already at the quarantine name (a symlink to a victim) is never written through."""
    rig = Rig(tmp_path)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (rig.path("quarantine") / NAME).symlink_to(victim)
    verdict = _accept(rig, NAME, GOOD_CSV, sidecar(NAME, GOOD_CSV))
    assert verdict.reasons == ("a file of this name is already being checked",)
    assert victim.read_bytes() == b"precious"
    assert list(rig.path("processing").iterdir()) == []


def test_the_same_bad_file_twice_is_kept_once_and_audited_twice(tmp_path: Path) -> None:
    """A partner retrying a refused file: one copy on disk, an audit entry each time."""
    rig = Rig(tmp_path)
    data = b"[1]"
    for _ in range(2):
        assert not _accept(rig, NAME, data, sidecar(NAME, data)).accepted
    assert len(rig.quarantine.refused()) == 1
    assert len(rig.audit.entries) == 2


def test_reasons_and_audit_never_quote_the_content(tmp_path: Path) -> None:
    """Neither the verdict nor the audit entry repeats what the file holds."""
    rig = Rig(tmp_path)
    data = HEADER + b'1,ada@example.com,=HYPERLINK("http://evil.example")\r\n'
    verdict = _accept(rig, NAME, data, sidecar(NAME, b"something else"))
    text = " ".join(verdict.reasons) + " ".join(e.model_dump_json() for e in rig.audit.entries)
    for fragment in ("ada@example.com", "HYPERLINK", "evil.example"):
        assert fragment not in text
    assert len(verdict.reasons) == 2  # the formula and the checksum, both reported


def test_when_the_audit_is_down_the_file_stays_in_quarantine(tmp_path: Path) -> None:
    """Fail closed: no audit entry, no release; the error reaches the caller."""
    rig = Rig(tmp_path)
    rig.audit.unavailable = True
    with pytest.raises(AuditUnavailableError):
        _accept(rig, NAME, GOOD_CSV, sidecar(NAME, GOOD_CSV))
    assert list(rig.path("processing").iterdir()) == []
    assert [path.name for path in rig.path("quarantine").iterdir()] == [NAME]


def test_purge_deletes_refused_files_after_the_retention(tmp_path: Path) -> None:
    """Refused files go after quarantine_retention, not before; each purge is audited."""
    rig = Rig(tmp_path, quarantine_retention="P7D")
    assert not _accept(rig, NAME, b"[1]", sidecar(NAME, b"[1]")).accepted
    rig.clock.advance(timedelta(days=6))
    assert not _accept(rig, "later.csv", b"[2]", sidecar("later.csv", b"[2]")).accepted
    assert rig.quarantine.purge() == 0
    rig.clock.advance(timedelta(days=2))
    assert rig.quarantine.purge() == 1
    ((kept, _),) = rig.quarantine.refused()
    assert kept.name.endswith("-later.csv")
    assert len(list(rig.path("refused").iterdir())) == 2  # the file and its reasons
    purges = [entry for entry in rig.audit.entries if entry.action == "files.purge"]
    assert [entry.volume.records for entry in purges] == [0, 1]


def test_inspect_is_pure(tmp_path: Path) -> None:
    """inspect() decides without writing or auditing."""
    rig = Rig(tmp_path)
    verdict = rig.quarantine.inspect(GOOD_CSV, name=NAME, sidecars=sidecar(NAME, GOOD_CSV))
    assert verdict.accepted
    assert rig.everything() == []
    assert rig.audit.entries == []


def test_an_integration_without_files_or_with_a_bad_xsd_is_a_config_error(tmp_path: Path) -> None:
    """The quarantine is built for a file integration whose schemas compile."""
    with pytest.raises(ConfigError, match="no files: section"):
        Quarantine(tmp_path, manifest(tmp_path), "nope", audit=Rig(tmp_path).audit)
    broken = manifest(tmp_path, format="xml", csv_columns=None, xml_schema_file="missing.xsd")
    with pytest.raises(ConfigError, match=r"missing\.xsd"):
        Quarantine(tmp_path, broken, INTEGRATION, audit=Rig(tmp_path).audit, manifest_dir=tmp_path)
