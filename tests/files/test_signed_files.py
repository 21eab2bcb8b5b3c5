"""Detached CMS signatures on received files (``NAME.p7s``), made by OpenSSL, checked in quarantine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from interlock.audit import MemorySink
from interlock.files.quarantine import Quarantine, Verdict
from tests.files.as2_support import Keys, openssl
from tests.files.quarantine_support import GOOD_CSV, INTEGRATION, manifest

pytestmark = pytest.mark.processes

NAME = "orders.csv"


def _quarantine(keys: Keys, tmp_path: Path, signer: str = "acme.pem") -> Quarantine:
    loaded = manifest(
        tmp_path,
        partner={"signer": {"certificate": f"file:{keys.file(signer)}",
                            "ca": f"file:{keys.file('ca.pem')}"}},
        signature="detached-cms",
        checksum="none",
    )  # fmt: skip
    return Quarantine(tmp_path / "area", loaded, INTEGRATION, audit=MemorySink())


def _signature(
    keys: Keys, data: bytes, *, signer: str = "acme", extra: tuple[str, ...] = ()
) -> bytes:
    """OpenSSL's detached signature of ``data`` (DER unless ``extra`` says otherwise)."""
    return openssl(
        "cms", "-sign", "-binary", "-signer", keys.file(f"{signer}.pem"),
        "-inkey", keys.file(f"{signer}.key"), "-outform", "DER", *extra, stdin=data,
    )  # fmt: skip


def _accept(quarantine: Quarantine, data: bytes, signature: bytes | None) -> Verdict:
    sidecars = {} if signature is None else {f"{NAME}.p7s": signature}
    return asyncio.run(quarantine.accept(NAME, data, sidecars=sidecars))


@pytest.mark.parametrize("form", ["DER", "PEM"])
def test_a_file_signed_by_the_partner_is_accepted(keys: Keys, tmp_path: Path, form: str) -> None:
    """OpenSSL's detached signature by the partner's certificate: accepted into processing."""
    signature = _signature(keys, GOOD_CSV, extra=("-outform", form))
    verdict = _accept(_quarantine(keys, tmp_path), GOOD_CSV, signature)
    assert verdict.accepted, verdict.reasons


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("missing", "is missing"),
        ("other-file", "does not verify"),
        ("stranger", "not signed by the partner"),
        ("expired", "not signed by the partner"),
        ("sha1", "weak signature algorithm sha1"),
        ("garbage", "cannot be parsed"),
    ],
)
def test_a_bad_signature_keeps_the_file_in_quarantine(
    keys: Keys, tmp_path: Path, case: str, reason: str
) -> None:
    """Missing, for other bytes, by another key, SHA-1, or garbage: refused with the reason."""
    signatures: dict[str, Callable[[], bytes | None]] = {
        "missing": lambda: None,
        "other-file": lambda: _signature(keys, GOOD_CSV + b"3,eve@example.com,1.00\r\n"),
        "stranger": lambda: _signature(keys, GOOD_CSV, signer="stranger"),
        "expired": lambda: _signature(keys, GOOD_CSV, signer="expired"),
        "sha1": lambda: _signature(keys, GOOD_CSV, extra=("-md", "sha1")),
        "garbage": lambda: b"\x30\x03\x02\x01\x00",
    }
    signature = signatures[case]()
    quarantine = _quarantine(keys, tmp_path)
    verdict = _accept(quarantine, GOOD_CSV, signature)
    assert not verdict.accepted
    assert any(reason in given for given in verdict.reasons), verdict.reasons
    assert quarantine.processing() == []


def test_an_expired_partner_certificate_is_refused(keys: Keys, tmp_path: Path) -> None:
    """The pinned certificate itself expired: its signatures are refused as expired."""
    quarantine = _quarantine(keys, tmp_path, signer="expired.pem")
    verdict = _accept(quarantine, GOOD_CSV, _signature(keys, GOOD_CSV, signer="expired"))
    assert not verdict.accepted
    assert any("expired" in given for given in verdict.reasons), verdict.reasons
