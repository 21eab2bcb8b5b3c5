"""The demo's privacy walkthrough: trace a customer, export her data, erase it, verify the receipt.

The order calls of the walkthrough before it carried the customer's e-mail
address (``customer.email`` in ``GET /orders/{id}``, located by the route's
``subjects``): the gateway recorded, as keyed hashes, that the CRM received
her data from the ERP. Here the privacy desk (a client holding
``privacy.admin``) uses the HTTP API a ticketing system would: ``/v1/privacy/
trace`` finds both systems; an export and an erasure ask the sample ERP
through its webhook (signed by Interlock, RFC 9421) and list the CRM, which
has no connector, for the operator to confirm; the erasure's receipt is then
verified offline with the SDK, as an auditor would with ``interlock audit
verify-receipt``.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Final

import aiohttp

from interlock.cli.context import console
from interlock.crypto.keyfile import write_private_file
from interlock.errors import InterlockError
from interlock.gateway.server import RunningGateway
from interlock.sdk.audit import NoteVerifier
from interlock.sdk.receipts import verify_receipt

__all__ = ["PRIVACY_CLIENT", "privacy_walkthrough"]

PRIVACY_CLIENT: Final = "privacy-desk"
#: The sample ERP's customer of order 1001, written as a person might give it.
CUSTOMER: Final = "Ada@Example.com"
_SUBJECT: Final = {"kind": "email", "value": CUSTOMER}
# The demo runs no CRM: the operator confirms there is nothing of hers there.
_NO_CRM: Final = "the demo runs no CRM tenant: nothing of hers is held there"
_WAIT_SECONDS: Final = 30.0


class DemoError(InterlockError):
    """A step of the privacy walkthrough did not go as the demo expects."""

    code = "demo_failed"


async def privacy_walkthrough(
    http: aiohttp.ClientSession, base: str, gateway: RunningGateway, order_key: str, data_dir: Path
) -> None:
    """Trace, export, erase and verify, through ``/v1/privacy`` as the privacy desk."""
    issued = await asyncio.to_thread(gateway.gateway.keys.create, PRIVACY_CLIENT, ["privacy.admin"])
    desk = {"Authorization": f"Bearer {issued.token}"}
    await asyncio.to_thread(gateway.services.lineage.flush)  # the order calls' rows, written
    console.print(
        "\n[dim]-- data-subject rights: the order calls carried the customer's e-mail "
        f"address; the privacy desk ({PRIVACY_CLIENT}, scope privacy.admin) asks about "
        f"{CUSTOMER} through /v1/privacy[/dim]"
    )
    trace = await _json(http, "POST", f"{base}/v1/privacy/trace", desk, {"subject": _SUBJECT})
    console.print("[bold]trace[/bold]  POST /v1/privacy/trace")
    for system in trace["systems"]:
        transfers = ", ".join(
            f"{t['destination']} under {t['safeguard']}" for t in system["transfers"]
        )
        console.print(
            f"  {system['system']:<5} ({system['location']}) {system['requests']} request(s) "
            f"from {', '.join(system['received_from'])} "
            f"via {', '.join(i['integration'] for i in system['integrations'])}: "
            f"{', '.join(system['categories'])}" + (f"; transfer {transfers}" if transfers else ""),
            markup=False,
            highlight=False,
        )
    bundle = await _request(http, base, desk, "export")
    exported = await _json(http, "GET", f"{base}/v1/privacy/requests/{bundle['id']}/export", desk)
    export_file = data_dir / "export.json"
    write_private_file(export_file, json.dumps(exported, indent=2).encode())
    for source in exported["sources"]:
        console.print(
            f"  {source['system']:<5} {source['status']}, {source['records'] or 0} record(s)",
            markup=False,
            highlight=False,
        )
    console.print(f"  the Art. 20 bundle (JSON, with its sources): {export_file}", markup=False)
    erased = await _request(http, base, desk, "erase")
    async with http.get(
        f"{base}/orders/1001", headers={"Authorization": f"Bearer {order_key}"}
    ) as response:
        console.print(
            f"  GET /orders/1001 after the erasure: {response.status} (the ERP removed her orders)"
        )
    after = await _json(http, "POST", f"{base}/v1/privacy/trace", desk, {"subject": _SUBJECT})
    console.print(
        f"  trace again: {len(after['systems'])} system(s) — the lineage index no longer "
        "holds her (the counts remain)"
    )
    await _verify_receipt(http, base, desk, erased["id"], gateway, data_dir)


async def _request(
    http: aiohttp.ClientSession, base: str, desk: dict[str, str], kind: str
) -> dict[str, Any]:
    """Create a ``kind`` request, confirm the CRM, wait until it closes; the closed view."""
    created = await _json(
        http, "POST", f"{base}/v1/privacy/requests", desk, {"kind": kind, "subject": _SUBJECT}
    )
    url = f"{base}/v1/privacy/requests/{created['id']}"
    systems = ", ".join(f"{s['system']} ({s['connector']})" for s in created["systems"])
    console.print(f"[bold]{kind}[/bold]  POST /v1/privacy/requests -> {created['id']}")
    console.print(f"  asks {systems}; deadline {created['deadline']}", markup=False)
    for system in created["systems"]:
        if system["connector"] == "manual":
            await _json(
                http,
                "POST",
                f"{url}/confirmations",
                desk,
                {"system": system["system"], "status": "not_found", "note": _NO_CRM},
            )
            console.print(f"  {system['system']}: confirmed by the operator ({_NO_CRM})")
    deadline = time.monotonic() + _WAIT_SECONDS
    while True:
        view = await _json(http, "GET", url, desk)
        if view["status"] == "closed":
            break
        if time.monotonic() > deadline:
            raise DemoError(f"request {created['id']} did not close within {_WAIT_SECONDS:.0f} s")
        await asyncio.sleep(0.2)
    outcomes = ", ".join(f"{s['system']} {s['status']}" for s in view["systems"])
    console.print(f"  closed {view['outcome']}: {outcomes}", markup=False)
    return view


async def _verify_receipt(  # noqa: PLR0917  (the walkthrough's parts)
    http: aiohttp.ClientSession,
    base: str,
    desk: dict[str, str],
    request_id: str,
    gateway: RunningGateway,
    data_dir: Path,
) -> None:
    """Fetch the erasure's receipt and verify it with the SDK and the log's key only."""
    receipt = await _json(http, "GET", f"{base}/v1/privacy/requests/{request_id}/receipt", desk)
    verifier: NoteVerifier = gateway.services.audit_log.keys.verifier
    receipt_file, key_file = data_dir / "receipt.json", data_dir / "audit.vkey"
    write_private_file(receipt_file, json.dumps(receipt, indent=2).encode())
    key_file.write_text(verifier.vkey + "\n", encoding="utf-8")
    summary = verify_receipt(receipt, [verifier])
    console.print(
        f"[bold]receipt[/bold]  verified offline: {summary.kind} {summary.request_id} "
        f"{summary.outcome}, {len(receipt['entries'])} audit entries proven against the "
        f"signed tree head of size {summary.checkpoint.size}"
    )
    console.print(
        f"  interlock audit verify-receipt {receipt_file} --key {key_file}",
        markup=False,
        soft_wrap=True,
    )


async def _json(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: dict[str, str],
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    async with http.request(method, url, headers=headers, json=body) as response:
        text = await response.text()
    if response.status >= 300:
        raise DemoError(f"{method} {url.split('/', 3)[3]} answered {response.status}: {text[:300]}")
    decoded = json.loads(text)
    if not isinstance(decoded, dict):
        raise DemoError(f"{method} {url}: not a JSON object")
    return decoded
