"""Loading Wycheproof vectors from ../shared/vectors (never copied into the repo)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
WYCHEPROOF = REPO_ROOT.parent / "shared" / "vectors" / "wycheproof"


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
    """Every test of ``name``; skips the calling test when the shared folder is absent."""
    path = WYCHEPROOF / name
    if not path.is_file():
        pytest.skip(f"Wycheproof vectors not found at {path} (../shared/vectors is absent)")
    document = json.loads(path.read_text())
    return [
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
