"""The CLI's shared output: JSON documents and tables that never cut an identifier."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from rich.console import Console

from interlock.cli import output
from interlock.errors import NotFoundError, did_you_mean

SERIAL = "5f3a9c0b1d2e3f405162738495a6b7c8d9e0f1a2"


@pytest.fixture
def narrow(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    out = io.StringIO()
    monkeypatch.setattr(output, "console", Console(file=out, width=80, highlight=False))
    return out


def test_identifiers_are_never_cut_on_an_80_column_terminal(narrow: io.StringIO) -> None:
    table = output.table(
        "Certificates",
        output.Col("serial", identifier=True),
        output.Col("identity", identifier=True),
        "scopes",
        "status",
    )
    identity = "spiffe://interlock.local/client/order-sync"
    table.add_row(SERIAL, identity, "orders.read orders.write", "active")
    output.print_table(table)
    text = narrow.getvalue()
    assert SERIAL in text
    assert identity in text
    assert "…" not in text


def test_a_table_that_fits_keeps_the_terminal_width(narrow: io.StringIO) -> None:
    table = output.table("Keys", output.Col("id", identifier=True), "client")
    table.add_row("abc", "order-sync")
    output.print_table(table)
    assert max(len(line) for line in narrow.getvalue().splitlines()) <= 80


def test_json_timestamps_are_rfc3339_utc(capsys: pytest.CaptureFixture[str]) -> None:
    berlin = timezone(timedelta(hours=1))
    output.print_json(
        {"at": datetime(2026, 12, 5, 14, 0, tzinfo=berlin), "names": ("a", "b"), "none": None}
    )
    assert json.loads(capsys.readouterr().out) == {
        "at": "2026-12-05T13:00:00Z",
        "names": ["a", "b"],
        "none": None,
    }
    assert output.iso(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("name", "known", "suggestion"),
    [
        ("ordr-sync", ["order-sync", "crm-sync", "billing"], "; did you mean 'order-sync'?"),
        ("order", ["order-sync", "billing"], "; did you mean 'order-sync'?"),
        ("ORDER-SYNC", ["order-sync"], "; did you mean 'order-sync'?"),
        ("zzz", ["order-sync"], ""),
        ("order-sync", ["order-sync"], ""),
    ],
)
def test_did_you_mean(name: str, known: list[str], suggestion: str) -> None:
    assert did_you_mean(name, known) == suggestion


def test_unknown_names_a_kind_and_a_place() -> None:
    error = NotFoundError.unknown("secret", "erp/api-kye", ["erp/api-key"], where="in the vault")
    assert error.message == "no secret 'erp/api-kye' in the vault; did you mean 'erp/api-key'?"
    assert error.code == "not_found"
