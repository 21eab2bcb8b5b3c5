"""How the docs test reads commands: blocks, comments, exit statuses, the bit of sh it runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.blocks import commands, documents
from tests.docs.shell import UnsupportedShellError, expand, parse
from tests.docs.test_commands import EXCLUDED, REPO

DOC = """\
# Title

```sh
interlock init                 # data dir
interlock check \\
    --format sarif             # exit 1 on a failure
```

```console
$ interlock scan .            # exit 0 clean, 1 findings, 2 usage error
3 files scanned
$ # a comment line
```

```text
interlock never-run
```

```python
print("not shell")
```
"""


def test_shell_blocks_give_commands_with_lines_comments_and_statuses(tmp_path: Path) -> None:
    """sh lines, continuations, console `$ ` lines only; text and python blocks are skipped."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "x.md").write_text(DOC)
    found = commands(tmp_path, "docs/x.md")
    assert [(c.line, c.text) for c in found] == [
        (4, "interlock init"),
        (5, "interlock check --format sarif"),
        (10, "interlock scan ."),
    ]
    assert [sorted(c.allowed_statuses()) for c in found] == [[0], [0, 1], [0, 1]]
    assert found[1].where == "docs/x.md:5"


def test_documents_are_the_readme_and_every_doc(tmp_path: Path) -> None:
    """A new docs/*.md is picked up without touching the test."""
    (tmp_path / "docs").mkdir()
    for name in ("b.md", "a.md", "notes.txt"):
        (tmp_path / "docs" / name).write_text("")
    assert documents(tmp_path) == ["README.md", "docs/a.md", "docs/b.md"]


def test_pipes_redirections_assignments_and_sequences_parse() -> None:
    """The forms the docs use, and what each step reads and writes."""
    [fed] = parse('printf %s "abc" | interlock secrets put erp/api-key')
    assert (fed.argv, fed.stdin_text) == (["interlock", "secrets", "put", "erp/api-key"], "abc")
    [echoed] = parse("echo ada@example.com | interlock privacy trace - --kind email")
    assert echoed.stdin_text == "ada@example.com\n"
    first, second = parse("interlock audit key > audit.vkey && interlock audit verify x")
    assert (first.stdout_file, second.argv[-1]) == ("audit.vkey", "x")
    [assigned] = parse("INTERLOCK_KEK_BACKEND=pkcs11 interlock init < in.txt")
    assert assigned.assignments == {"INTERLOCK_KEK_BACKEND": "pkcs11"}
    assert assigned.stdin_file == "in.txt"
    [exported] = parse("export INTERLOCK_PKCS11_TOKEN_LABEL=interlock")
    assert exported.export
    assert len(parse("interlock a ; interlock b")) == 2


@pytest.mark.parametrize(
    "line",
    ["interlock a || interlock b", "interlock a &", "cat x | interlock a", "interlock a >> log"],
)
def test_other_shell_constructs_are_refused(line: str) -> None:
    """Anything else fails loudly rather than running something else."""
    with pytest.raises(UnsupportedShellError):
        parse(line)


def test_variables_must_be_known_and_need_no_quoting() -> None:
    """$NAME expands only to values that survive splitting unchanged."""
    assert expand('printf %s "$T"', {"T": "abc-1_2"}) == 'printf %s "abc-1_2"'
    with pytest.raises(UnsupportedShellError, match=r"\$MISSING"):
        expand("echo $MISSING", {})
    with pytest.raises(UnsupportedShellError, match="quoting"):
        expand("echo ${T}", {"T": "a b"})


def test_every_exclusion_still_matches_a_documented_line() -> None:
    """A stale entry in EXCLUDED would hide nothing today and a regression tomorrow."""
    for (document, pattern), reason in EXCLUDED.items():
        assert reason
        assert any(re.search(pattern, c.text) for c in commands(REPO, document)), (
            document,
            pattern,
        )


def test_a_leading_tilde_is_the_home_directory() -> None:
    """``~/x`` and ``NAME=~/x`` as sh expands them; a quoted or inner ``~`` stays."""
    text = "mkdir -p ~/.local a=~/b ~ x~/y '~/z'"
    assert expand(text, {"HOME": "/home/ops"}) == (
        "mkdir -p /home/ops/.local a=/home/ops/b /home/ops x~/y '~/z'"
    )
