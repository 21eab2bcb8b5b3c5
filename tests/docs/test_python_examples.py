"""The Python examples of docs/messaging.md and docs/events.md fit the manifests beside them.

The docs test (test_commands.py) runs shell blocks only. Here each document's
``## The manifest`` block, completed with the systems and controller it leaves
out, must validate; every Python block must compile; every integration and
consumer name an example passes to :mod:`interlock.services.messaging` must be
one that manifest declares, of the right type; and docs/messaging.md shows a
producer and a consumer in under 20 lines each (issue 22's "Done when").
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Final

import pytest

from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from tests.docs.test_commands import REPO

# What the manifest excerpts of the two documents take as given.
PREAMBLE: Final = """\
version: 1
organisation:
  controller: {name: Example GmbH, contact: privacy@example.com}
systems:
  erp: {url: "https://erp.example", location: DE}
  crm: {url: "https://crm.example", location: DE}
"""
# The helpers of interlock.services.messaging: (positional arguments naming things, type).
HELPERS: Final = {
    "producer": (1, "messaging"),
    "consumer": (2, "messaging"),
    "event_producer": (1, "event_streaming"),
    "event_consumer": (2, "event_streaming"),
}
DOCUMENTS: Final = ("docs/messaging.md", "docs/events.md")
_FENCED: Final = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks(text: str, language: str) -> list[str]:
    return [body for info, body in _FENCED.findall(text) if info == language]


def _manifest(document: str, tmp_path: Path) -> Manifest:
    text = (REPO / document).read_text()
    section = text.split("## The manifest", 1)[1]
    path = tmp_path / "interlock.yaml"
    path.write_text(PREAMBLE + _blocks(section, "yaml")[0])
    return load_manifest(path)


def _calls(source: str) -> list[tuple[str, list[str]]]:
    """(helper, its leading string arguments) for each call of a helper in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if node.func.id in HELPERS:
            count = HELPERS[node.func.id][0]
            names = [a.value for a in node.args[:count] if isinstance(a, ast.Constant)]
            assert len(names) == count, ast.unparse(node)
            found.append((node.func.id, [str(n) for n in names]))
    return found


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_examples_name_what_the_manifest_declares(document: str, tmp_path: Path) -> None:
    manifest = _manifest(document, tmp_path)
    examples = _blocks((REPO / document).read_text(), "python")
    assert examples
    calls = [call for source in examples for call in _calls(source)]
    assert calls, "no example calls a helper of interlock.services.messaging"
    for helper, names in calls:
        flow = manifest.integrations.get(names[0])
        assert flow is not None, f"{helper}: no integration {names[0]!r} in the manifest"
        assert flow.type == HELPERS[helper][1], f"{helper}: {names[0]!r} is {flow.type}"
        if len(names) == 2:
            section = flow.messaging or flow.events
            assert section is not None
            assert names[1] in section.consumers, (
                f"{helper}: {names[1]!r} is not a consumer of {names[0]!r}"
            )


def test_messaging_shows_a_producer_and_a_consumer_in_under_20_lines_each() -> None:
    examples = _blocks((REPO / "docs/messaging.md").read_text(), "python")
    helpers = [{helper for helper, _ in _calls(source)} for source in examples]
    assert {"producer"} in helpers
    assert {"consumer"} in helpers
    for source in examples:
        compile(source, "docs/messaging.md", "exec")
        assert len(source.splitlines()) < 20, source
