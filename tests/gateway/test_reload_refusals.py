"""File-mode reload: every refusal is logged, audited and counted; the hash is of what was loaded.

Issue: a reload that failed with something other than an InterlockError (a
``ca: file:`` that is missing or not PEM) was neither logged as refused nor
audited; and the SHA-256 reported for a reload came from a second read of the
file, which may differ from the text that was parsed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from interlock.config import loader
from interlock.config.yaml_source import YamlDocument, read_yaml
from interlock.testing.gateway import Env, lines


def _refusals(env: Env) -> list[str]:
    return [
        str(line.get("error"))
        for line in lines(env)
        if line.get("event", "").startswith("manifest reload refused")
    ]


def _failures(env: Env) -> float:
    prefix = 'interlock_manifest_reload_failures_total{source="file"} '
    found = [line for line in env.metrics().splitlines() if line.startswith(prefix)]
    assert len(found) == 1
    return float(found[0].removeprefix(prefix))


@pytest.mark.parametrize("content", [None, "not a certificate\n"])
def test_a_reload_failing_outside_validation_is_logged_audited_and_counted(
    env: Env, tmp_path: Path, content: str | None
) -> None:
    """A ca: file: that is missing or not PEM: refused like an invalid manifest."""
    original = env.manifest_path.read_text()
    token, _ = env.key(["orders.read"])
    ca = tmp_path / f"ca-{os.urandom(4).hex()}.pem"
    if content is not None:
        ca.write_text(content)
    changed = original.replace('ca: "pki:internal"', f'ca: "file:{ca}"', 1)
    assert changed != original
    before = _failures(env)
    try:
        env.manifest_path.write_text(changed)
        assert env.gateway.reload() is False
        assert env.request("GET", "/orders/1001", {"Authorization": f"Bearer {token}"})[0] == 200
        assert any(
            "cannot assemble the gateway" in error
            and ("FileNotFoundError" in error or "SSLError" in error)
            for error in _refusals(env)
        )
        entries = env.audit_entries(None, "manifest.reload", reason="cannot assemble")
        assert entries, "the refusal is on the audit trail"
        assert entries[-1]["outcome"]["result"] == "failure"
        assert _failures(env) == before + 1
        assert env.gateway.services.manifest_status.refusing is None  # the old one serves
    finally:
        env.manifest_path.write_text(original)


def test_the_hash_reported_for_a_reload_is_of_the_bytes_parsed(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file changes right after it was read: the reported SHA-256 is still the read text's."""
    original = env.manifest_path.read_text()
    loaded = original + "# the text that was parsed\n"

    def read_then_edit(path: Path) -> YamlDocument:
        document = read_yaml(path)
        path.write_text(original + "# written after the read\n")
        return document

    monkeypatch.setattr(loader, "read_yaml", read_then_edit)
    try:
        env.manifest_path.write_text(loaded)
        assert env.gateway.reload() is True
        expected = hashlib.sha256(loaded.encode()).hexdigest()
        assert env.gateway.services.manifest_status.sha256 == expected
    finally:
        monkeypatch.undo()
        env.manifest_path.write_text(original)
        assert env.gateway.reload() is True
