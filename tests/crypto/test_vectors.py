"""The vector loader: absent vectors skip locally but fail in CI; an empty set always fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.testing.services import REQUIRE_SERVICES_ENV
from tests.crypto.vectors import nonempty, vector_file


def test_absent_vectors_fail_under_require_services(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(REQUIRE_SERVICES_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="required test vectors missing"):
        vector_file(tmp_path / "absent.json")


def test_absent_vectors_skip_without_require_services(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(REQUIRE_SERVICES_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="not found"):
        vector_file(tmp_path / "absent.json")
    (tmp_path / "present.json").write_text("{}")
    assert vector_file(tmp_path / "present.json") == tmp_path / "present.json"


def test_an_empty_vector_set_fails_instead_of_passing_vacuously() -> None:
    with pytest.raises(pytest.fail.Exception, match="would pass vacuously"):
        nonempty([], "AES-GCM vectors")
    assert nonempty([1], "one vector") == [1]
