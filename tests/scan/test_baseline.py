"""The baseline suppresses exactly its fingerprints; bad baselines are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.scan import (
    BASELINE_NAME,
    Baseline,
    BaselineEntry,
    ScanInputError,
    load_baseline,
    scan,
    write_baseline,
)
from tests.scan.helpers import rand


def _plant(root: Path, name: str, value: str) -> None:
    (root / name).write_text(f"service:\n  api_key: {value}\n", encoding="utf-8")


def test_baseline_suppresses_exactly_its_fingerprint(tmp_path: Path) -> None:
    """An accepted value is suppressed; a different value on the same line and file is not."""
    first, second = rand(32), rand(32)
    _plant(tmp_path, "a.yaml", first)
    (found,) = scan(tmp_path, Baseline()).findings
    baseline = Baseline((BaselineEntry(found.rule_id, found.path, found.fingerprint, "test data"),))
    assert scan(tmp_path, baseline).findings == ()
    assert len(scan(tmp_path, baseline).suppressed) == 1
    _plant(tmp_path, "a.yaml", second)
    assert len(scan(tmp_path, baseline).findings) == 1
    _plant(tmp_path, "a.yaml", first)
    _plant(tmp_path, "b.yaml", first)  # same value, another file: its own entry needed
    assert [f.path for f in scan(tmp_path, baseline).findings] == ["b.yaml"]


def test_written_baseline_holds_no_secret_and_round_trips(tmp_path: Path) -> None:
    """The file names rule, path, fingerprint and reason; the value is nowhere in it."""
    value = rand(40)
    _plant(tmp_path, "a.yaml", value)
    report = scan(tmp_path, Baseline())
    write_baseline(tmp_path / BASELINE_NAME, Baseline(), report.findings, "fixture for the docs")
    text = (tmp_path / BASELINE_NAME).read_text()
    assert value not in text
    assert value[:8] not in text
    loaded = load_baseline(tmp_path / BASELINE_NAME)
    assert [e.reason for e in loaded.entries] == ["fixture for the docs"]
    assert scan(tmp_path, loaded).findings == ()


def test_missing_baseline_is_empty(tmp_path: Path) -> None:
    """No file, no accepted findings."""
    assert load_baseline(tmp_path / BASELINE_NAME) == Baseline()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not JSON"),
        ('{"version": 2, "entries": []}', '"version": 1'),
        ('{"version": 1, "entries": [{"rule": "r", "path": "p", "fingerprint": "f"}]}', "reason"),
        (
            '{"version": 1, "entries": [{"rule": "r", "path": "p", "fingerprint": "f", "reason": " "}]}',
            "reason",
        ),
        ('{"version": 1, "entries": ["x"]}', "entries[0]"),
    ],
)
def test_bad_baseline_is_an_error_naming_the_file(
    tmp_path: Path, content: str, fragment: str
) -> None:
    """Malformed JSON, wrong version, a missing or empty reason: one message naming the file."""
    path = tmp_path / BASELINE_NAME
    path.write_text(content)
    with pytest.raises(ScanInputError) as caught:
        load_baseline(path)
    assert str(path) in caught.value.message
    assert fragment in caught.value.message
    assert "\n" not in caught.value.message
