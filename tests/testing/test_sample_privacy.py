"""The sample ERP's privacy webhook: signed by Interlock's key or refused; one answer per key.

A real sample ERP over HTTPS (a CA made here), requests signed with the SDK's
RFC 9421 signer and an ES256 key made here, published to the ERP as a JWKS.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import ECKey, OKPKey

from interlock.sdk.rfc9421 import RequestSigner
from interlock.testing.sample_erp import SampleErp, start_sample_erp
from interlock.testing.sample_privacy import PRIVACY_PATH, JwksKeys
from interlock.testing.tls import LocalTls, make_tls

TOKEN = "erp-token-for-the-tests"


@dataclass
class Erp:
    """A running sample ERP, how to reach it, and Interlock's signer."""

    erp: SampleErp
    tls: LocalTls
    signer: RequestSigner
    loop: asyncio.AbstractEventLoop

    def request(
        self,
        document: Any,
        key: str | None = "step-1",
        *,
        signer: RequestSigner | None = None,
        signed: bool = True,
        host: str | None = None,
        send: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """POST ``document`` to the webhook, ``signed`` (by ``signer``) for ``host``."""
        body = json.dumps(document).encode()
        authority = host or f"localhost:{self.erp.port}"
        sent = {"Content-Type": "application/json", "Host": authority}
        if key is not None:
            sent["Idempotency-Key"] = key
        if signed:
            sent.update(
                (signer or self.signer).sign(
                    "POST", f"https://{authority}{PRIVACY_PATH}", sent, body
                )
            )
        sent.update(headers or {})
        return self.raw("POST", PRIVACY_PATH, sent, send if send is not None else body)

    def raw(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, Any]:
        """One HTTPS request, verified against the test CA."""
        context = ssl.create_default_context(cafile=str(self.tls.ca_file))
        connection = http.client.HTTPSConnection(
            "localhost", self.erp.port, context=context, timeout=10
        )
        try:
            connection.putrequest(method, path, skip_host=True)
            sent = {"Host": f"localhost:{self.erp.port}", "Content-Length": str(len(body or b""))}
            for name, value in (sent | headers).items():
                connection.putheader(name, value)
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()


def _es256() -> tuple[ECKey, dict[str, Any]]:
    key = ECKey.generate_key("P-256", private=True)
    key.ensure_kid()
    public = key.as_dict(private=False) | {"alg": "ES256", "use": "sig"}
    return key, public


@pytest.fixture
def erp(tmp_path: Path) -> Iterator[Erp]:
    """A sample ERP trusting one ES256 key of Interlock's, on a loop of its own."""
    tls = make_tls(tmp_path / "tls", hosts=("localhost",))
    key, public = _es256()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    running = asyncio.run_coroutine_threadsafe(
        start_sample_erp(tls.cert_file, tls.key_file, TOKEN, jwks={"keys": [public]}), loop
    ).result(timeout=30)
    try:
        yield Erp(running, tls, RequestSigner(str(key.kid), key), loop)
    finally:
        asyncio.run_coroutine_threadsafe(running.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def _step(action: str, value: str = "ada@example.com", **more: Any) -> dict[str, Any]:
    return {
        "request_id": "dsr_" + "a" * 24,
        "action": action,
        "subject": {"kind": "email", "value": value},
        **more,
    }


def test_access_returns_the_customer_and_the_orders(erp: Erp) -> None:
    """Looked up by email (case-insensitively), by customer id, by phone."""
    status, answer = erp.request(_step("access", "ADA@example.com"))
    assert status == 200, answer
    assert (answer["status"], answer["records"]) == ("done", 2)
    assert answer["data"]["customer"]["id"] == "C-0001"
    assert [order["id"] for order in answer["data"]["orders"]] == ["1001"]
    by_id = _step("export") | {"subject": {"kind": "customer_id", "value": "C-0002"}}
    status, answer = erp.request(by_id, "step-2")
    assert (status, answer["data"]["customer"]["email"]) == (200, "alan@example.com")
    by_phone = _step("access") | {"subject": {"kind": "phone", "value": "+441632960003"}}
    status, answer = erp.request(by_phone, "step-3")
    assert (status, answer["data"]["orders"][0]["id"]) == (200, "1003")
    status, answer = erp.request(_step("access", "nobody@example.com"), "step-4")
    assert (status, answer) == (200, {"status": "not_found", "records": 0, "data": {}})


def test_erase_removes_the_records_once_whatever_the_retries(erp: Erp) -> None:
    """The same Idempotency-Key signed afresh gets the first answer; nothing is erased twice."""
    status, first = erp.request(_step("erase"), "erase-ada")
    assert (status, first) == (200, {"status": "done", "records": 2, "data": {}})
    assert "C-0001" not in erp.erp.data.customers
    assert "1001" not in erp.erp.data.orders
    status, _ = erp.raw("GET", "/sap/opu/odata/orders/1001", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 404
    customers, orders = dict(erp.erp.data.customers), dict(erp.erp.data.orders)
    status, again = erp.request(_step("erase"), "erase-ada")  # a retry: a new signature
    assert (status, again) == (200, first)
    assert (erp.erp.data.customers, erp.erp.data.orders) == (customers, orders)
    status, fresh = erp.request(_step("erase"), "erase-ada-later")
    assert (status, fresh["status"]) == (200, "not_found")
    status, reused = erp.request(_step("erase", "alan@example.com"), "erase-ada")
    assert status == 422, reused
    assert "C-0002" in erp.erp.data.customers


def test_rectify_corrects_allowed_fields_everywhere(erp: Erp) -> None:
    """The customer and the copy in each order; other fields are refused."""
    status, answer = erp.request(_step("rectify", corrections={"name": "Ada King"}))
    assert status == 200, answer
    assert answer["records"] == 2
    assert erp.erp.data.customers["C-0001"]["name"] == "Ada King"
    assert erp.erp.data.orders["1001"]["customer"]["name"] == "Ada King"
    status, answer = erp.request(_step("rectify", corrections={"tax_id": "DE000000000"}), "step-2")
    assert status == 422, answer
    assert erp.erp.data.customers["C-0001"]["tax_id"] == "DE811907980"
    status, answer = erp.request(_step("rectify"), "step-3")
    assert status == 422, answer


def test_unsigned_and_badly_signed_requests_are_refused_with_401(erp: Erp) -> None:
    """No signature, another key, a changed body, a replay, a signature for another server."""
    assert erp.request(_step("erase"), signed=False)[0] == 401
    other, _ = _es256()
    stranger = RequestSigner(str(other.kid), other)
    assert erp.request(_step("erase"), signer=stranger)[0] == 401
    forged = RequestSigner(erp.signer.key_id, other)  # Interlock's keyid, another key
    assert erp.request(_step("erase"), signer=forged)[0] == 401
    changed = json.dumps(_step("erase", "alan@example.com")).encode()
    assert erp.request(_step("access"), send=changed)[0] == 401
    status, answer = erp.request(_step("erase"), host=f"other.example:{erp.erp.port}")
    assert (status, answer["error"]) == (401, "the request was signed for another server")
    # The exact same signed request twice: the nonce is spent.
    body = json.dumps(_step("access")).encode()
    headers = {
        "Content-Type": "application/json",
        "Host": f"localhost:{erp.erp.port}",
        "Idempotency-Key": "replayed",
    }
    url = f"https://localhost:{erp.erp.port}{PRIVACY_PATH}"
    headers.update(erp.signer.sign("POST", url, headers, body))
    assert erp.raw("POST", PRIVACY_PATH, headers, body)[0] == 200
    status, answer = erp.raw("POST", PRIVACY_PATH, headers, body)
    assert status == 401, answer
    # Nothing was erased by any of them.
    assert {"C-0001", "C-0002"} <= set(erp.erp.data.customers)


def test_bad_requests(erp: Erp) -> None:
    """No Idempotency-Key, an unknown kind, a malformed body: 4xx, nothing done."""
    status, answer = erp.request(_step("erase"), key=None)
    assert status == 400, answer
    unknown = _step("erase") | {"subject": {"kind": "iban", "value": "DE00"}}
    assert erp.request(unknown, "k-1")[0] == 422
    assert erp.request({"action": "erase"}, "k-2")[0] == 422
    assert erp.request(_step("shred"), "k-3")[0] == 422
    assert "C-0001" in erp.erp.data.customers


def test_the_bearer_token_still_guards_everything_else(erp: Erp) -> None:
    """Only the webhook takes a signature instead of the token."""
    status, _ = erp.raw("GET", "/sap/opu/odata/orders/1001", {})
    assert status == 401


def test_jwks_from_a_file_and_ed25519_keys(tmp_path: Path) -> None:
    """A JWKS file is read (and re-read when it changes); RSA and unknown kids resolve to None."""
    okp = OKPKey.generate_key("Ed25519", private=True)
    okp.ensure_kid()
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [okp.as_dict(private=False)]}))
    keys = JwksKeys(path)
    found = keys.resolve(str(okp.kid))
    assert found is not None
    assert (found.alg, found.client) == ("ed25519", "interlock")
    assert keys.resolve("unknown") is None
    _, public = _es256()
    path.write_text(json.dumps({"keys": [public, {"kty": "oct", "kid": "sym", "k": "AAAA"}]}))
    assert keys.resolve(str(okp.kid)) is None
    resolved = keys.resolve(public["kid"])
    assert resolved is not None
    assert resolved.alg == "ecdsa-p256-sha256"
    assert keys.resolve("sym") is None
