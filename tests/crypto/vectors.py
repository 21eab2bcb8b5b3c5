"""Loading public test vectors from ../shared/vectors (never copied into the repo).

CI has the folder: under ``INTERLOCK_REQUIRE_SERVICES=1`` an absent file fails
the test instead of skipping it, and a file that yields no vectors fails
everywhere (a loop over nothing passes whatever the code does).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from interlock.testing.services import require_env

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_VECTORS = REPO_ROOT.parent / "shared" / "vectors"
WYCHEPROOF = SHARED_VECTORS / "wycheproof"

T = TypeVar("T")


def vector_file(path: Path) -> Path:
    """``path``; skips the calling test when it is absent, fails under INTERLOCK_REQUIRE_SERVICES=1."""
    if not path.exists():
        reason = f"test vectors not found at {path} (../shared/vectors is absent)"
        if require_env():
            pytest.fail(f"required test vectors missing: {reason}")
        pytest.skip(reason)
    return path


def nonempty(vectors: Sequence[T], what: str) -> Sequence[T]:
    """``vectors``, failing the test when there are none: it would pass vacuously."""
    if not vectors:
        pytest.fail(f"no {what} loaded: the test would pass vacuously")
    return vectors


@dataclass(frozen=True)
class AeadVector:
    """One AEAD test case with its group's parameters (sizes in bits)."""

    tc_id: int
    key: bytes
    iv: bytes
    aad: bytes
    msg: bytes
    ct: bytes
    tag: bytes
    result: str  # "valid", "invalid" or "acceptable"
    key_size: int
    iv_size: int
    tag_size: int


def aead_vectors(name: str) -> list[AeadVector]:
    """Every test of ``name``; see :func:`vector_file` when the shared folder is absent."""
    document = json.loads(vector_file(WYCHEPROOF / name).read_text())
    vectors = [
        AeadVector(
            tc_id=test["tcId"],
            key=bytes.fromhex(test["key"]),
            iv=bytes.fromhex(test["iv"]),
            aad=bytes.fromhex(test["aad"]),
            msg=bytes.fromhex(test["msg"]),
            ct=bytes.fromhex(test["ct"]),
            tag=bytes.fromhex(test["tag"]),
            result=test["result"],
            key_size=group["keySize"],
            iv_size=group["ivSize"],
            tag_size=group["tagSize"],
        )
        for group in document["testGroups"]
        for test in group["tests"]
    ]
    nonempty(vectors, f"Wycheproof vectors from {name}")
    return vectors
