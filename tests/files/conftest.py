"""Fixtures the file-transfer tests share: one set of AS2 keys and certificates per worker."""

from __future__ import annotations

import pytest

from tests.files.as2_support import Keys, make_keys


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """The partner's and our RSA keys, certificates, a CA and TLS, made once (RSA is slow)."""
    return make_keys(tmp_path_factory.mktemp("as2-keys"))
