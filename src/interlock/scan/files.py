"""Which files a scan reads: tracked or unignored files, never environments or binaries.

Inside a git work tree the list comes from ``git ls-files -co --exclude-standard``
(tracked plus untracked-but-not-ignored), so ``.gitignore`` is respected;
elsewhere the tree is walked. Either way virtualenvs (``.venv*`` or any
directory holding ``pyvenv.cfg``), VCS and cache directories, ``node_modules``,
``build`` and ``dist`` are skipped, and so are binaries and files over the size
cap.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Final

__all__ = ["DEFAULT_MAX_BYTES", "iter_files", "read_text"]

DEFAULT_MAX_BYTES: Final = 1024 * 1024
_SKIP_DIRS: Final = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        "node_modules",
        "build",
        "dist",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".hypothesis",
        ".tox",
        ".nox",
        ".cache",
        ".eggs",
        "site-packages",
    }
)
_SKIP_SUFFIXES: Final = (".pyc", ".pyo", ".so", ".whl", ".egg-info")
_SNIFF: Final = 8192


def iter_files(root: Path) -> Iterator[Path]:
    """Every candidate file below ``root`` (or ``root`` itself when it is a file), sorted."""
    if root.is_file():
        yield root
        return
    listed = _git_files(root)
    candidates = listed if listed is not None else _walk(root)
    skipped: dict[Path, bool] = {}
    for path in sorted(candidates):
        if path.name.endswith(_SKIP_SUFFIXES) or _in_skipped_dir(root, path, skipped):
            continue
        if path.is_file() and not path.is_symlink():
            yield path


def read_text(path: Path, max_bytes: int) -> str | None:
    """The file's text, or ``None`` when it is too large, binary or unreadable."""
    try:
        if path.stat().st_size > max_bytes:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:_SNIFF]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1") if _mostly_text(data[:_SNIFF]) else None


def _mostly_text(sample: bytes) -> bool:
    printable = sum(1 for byte in sample if byte >= 32 or byte in b"\t\r\n\f")
    return printable >= 0.95 * max(len(sample), 1)


def _git_files(root: Path) -> list[Path] | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        inside = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [git, "rev-parse", "--is-inside-work-tree"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if inside.returncode != 0 or inside.stdout.strip() != "true":
            return None
        listed = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [git, "ls-files", "-z", "-co", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    names = listed.stdout.decode("utf-8", "surrogateescape").split("\0")
    return [root / name for name in dict.fromkeys(names) if name]


def _walk(root: Path) -> Iterator[Path]:
    for current, dirs, files in os.walk(root):
        here = Path(current)
        dirs[:] = [d for d in dirs if not _skip_dir(here / d)]
        for name in files:
            yield here / name


def _skip_dir(path: Path) -> bool:
    name = path.name
    return name in _SKIP_DIRS or name.startswith(".venv") or (path / "pyvenv.cfg").is_file()


def _in_skipped_dir(root: Path, path: Path, cache: dict[Path, bool]) -> bool:
    for parent in path.relative_to(root).parents:
        if parent == Path():
            continue
        directory = root / parent
        if directory not in cache:
            cache[directory] = _skip_dir(directory)
        if cache[directory]:
            return True
    return False
