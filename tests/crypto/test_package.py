"""The package's public face, and the rule that only it touches ``cryptography.hazmat``."""

from __future__ import annotations

import ast
from pathlib import Path

import interlock.crypto
from tests.crypto.vectors import REPO_ROOT

_SRC = REPO_ROOT / "src" / "interlock"


def _hazmat_imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return [name for name in names if name.startswith("cryptography.hazmat")]


def test_nothing_outside_interlock_crypto_imports_hazmat() -> None:
    """Hazardous primitives stay behind the crypto package; other packages seal and open."""
    crypto = _SRC / "crypto"
    modules = [p for p in _SRC.rglob("*.py") if crypto not in p.parents]
    offenders = [
        f"{path.relative_to(REPO_ROOT)}: {name}"
        for path in modules
        for name in _hazmat_imports(path)
    ]
    assert len(modules) > 0
    assert offenders == [], "; ".join(offenders)


def test_every_public_name_resolves() -> None:
    """``__all__`` names exactly what the package exports, and each name exists."""
    for name in interlock.crypto.__all__:
        assert hasattr(interlock.crypto, name), name
    assert {"Keyring", "KeyEncryptionKey", "seal", "open_sealed", "rewrap", "needs_rewrap"} <= set(
        interlock.crypto.__all__
    )
