"""The sample ERP's rotation endpoint, as Interlock's webhook rotator calls it (docs/vault.md).

``set`` adds a value to the bearer tokens it accepts (its token file too),
``test`` says whether it accepts one, ``retire`` removes one; the endpoint
takes its own rotation token, never the ERP's bearer token.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from interlock.testing.sample_erp import ROTATION_PATH, start_sample_erp
from interlock.testing.tls import make_tls

HOOK = "rotation-endpoint-token"

#: (method, path, bearer token, body) -> status
Call = Callable[[str, str, str, dict[str, object] | None], int]


@pytest.fixture
def erp(tmp_path: Path) -> Iterator[tuple[Call, Path]]:
    """A sample ERP accepting the tokens of a file ("old"), with a rotation token; how to call it."""
    tls = make_tls(tmp_path / "tls", hosts=("localhost",))
    tokens = tmp_path / "tokens"
    tokens.write_text("old\n")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    running = asyncio.run_coroutine_threadsafe(
        start_sample_erp(tls.cert_file, tls.key_file, None, token_file=tokens, rotation_token=HOOK),
        loop,
    ).result(timeout=30)

    def call(method: str, path: str, token: str, body: dict[str, object] | None) -> int:
        context = ssl.create_default_context(cafile=str(tls.ca_file))
        connection = http.client.HTTPSConnection("localhost", running.port, context=context)
        try:
            sent = None if body is None else json.dumps(body).encode()
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            connection.request(method, path, body=sent, headers=headers)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    try:
        yield call, tokens
    finally:
        asyncio.run_coroutine_threadsafe(running.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def _step(step: str, value: str) -> dict[str, object]:
    return {"name": "erp/orders-token", "version": 2, "step": step, "value": value}


def test_set_test_and_retire_change_the_tokens_the_erp_accepts(
    erp: tuple[Call, Path],
) -> None:
    """The old and the new token work during the overlap; after retire only the new one."""
    call, tokens = erp
    orders = "/sap/opu/odata/orders"
    assert call("GET", orders, "new", None) == 401
    assert call("POST", ROTATION_PATH, HOOK, _step("set", "new")) == 200
    assert tokens.read_text().split() == ["old", "new"]
    assert (call("GET", orders, "old", None), call("GET", orders, "new", None)) == (200, 200)
    assert call("POST", ROTATION_PATH, HOOK, _step("test", "new")) == 200
    assert call("POST", ROTATION_PATH, HOOK, _step("test", "never-set")) == 409
    assert call("POST", ROTATION_PATH, HOOK, _step("retire", "old")) == 200
    assert (call("GET", orders, "old", None), call("GET", orders, "new", None)) == (401, 200)


def test_the_endpoint_takes_the_rotation_token_only(erp: tuple[Call, Path]) -> None:
    """The ERP's own bearer token cannot rotate it."""
    call, tokens = erp
    assert call("POST", ROTATION_PATH, "old", _step("set", "mine")) == 401
    assert tokens.read_text().split() == ["old"]
