"""A sample "ERP orders" upstream over HTTPS, for the demo, tests and benchmarks.

It serves a handful of orders under SAP-like paths, requires the bearer token
it was started with (so the demo shows Interlock injecting outbound
credentials from its secret store), and has an ``/echo`` path that returns the
headers it received (so tests can check what the gateway forwards). Its
privacy webhook (``POST /privacy/requests``, :mod:`interlock.testing.sample_privacy`)
answers Interlock's data-subject requests on its customers
(:mod:`interlock.testing.sample_data`); it takes Interlock's RFC 9421
signature instead of the bearer token. Given a rotation token, it has the
endpoint of Interlock's ``webhook`` rotator (``POST /credentials/rotate``,
docs/vault.md): ``set`` adds a value to the bearer tokens it accepts, ``test``
checks it does accept it, ``retire`` removes it; the endpoint takes
``Authorization: Bearer <rotation token>`` instead of the bearer token.
"""

from __future__ import annotations

import asyncio
import hmac
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509

from interlock.testing.sample_data import CUSTOMERS, ORDERS, ErpData
from interlock.testing.sample_privacy import PRIVACY_PATH, JwksSource, PrivacyWebhook

__all__ = ["CUSTOMERS", "ORDERS", "SampleErp", "start_sample_erp"]


@dataclass
class SampleErp:
    """A running sample upstream."""

    runner: web.AppRunner
    port: int
    data: ErpData  # its customers and orders, as the privacy webhook left them

    async def stop(self) -> None:
        """Stop serving."""
        await self.runner.cleanup()


class _Tokens:
    """The bearer tokens accepted: one given, or every line of a file, re-read when it changes.

    A file lets a test rotate the upstream's credential while it runs: during
    the overlap the file lists the current and the previous token.
    """

    def __init__(self, token: str | None, path: Path | None) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._expected = [] if token is None else [f"Bearer {token}".encode()]

    def accepts(self, supplied: bytes) -> bool:
        if self._path is not None:
            stat = self._path.stat()
            if (stat.st_mtime_ns, stat.st_size) != self._stamp:
                lines = self._path.read_text().split()
                self._expected = [f"Bearer {line}".encode() for line in lines]
                self._stamp = (stat.st_mtime_ns, stat.st_size)
        # Compare with every token, so the time taken does not tell which one matched.
        matched = [hmac.compare_digest(supplied, expected) for expected in self._expected]
        return any(matched)

    def add(self, token: str) -> None:
        """Accept ``token`` too (written to the file, when there is one)."""
        self._change(lambda tokens: [*tokens, token] if token not in tokens else tokens)

    def remove(self, token: str) -> None:
        """Stop accepting ``token``."""
        self._change(lambda tokens: [t for t in tokens if t != token])

    def _change(self, change: Callable[[list[str]], list[str]]) -> None:
        if self._path is not None:
            self._path.write_text("".join(f"{t}\n" for t in change(self._path.read_text().split())))
        else:
            tokens = [e.decode().removeprefix("Bearer ") for e in self._expected]
            self._expected = [f"Bearer {t}".encode() for t in change(tokens)]


ROTATION_PATH = "/credentials/rotate"


def _rotation(tokens: _Tokens) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The webhook rotator's endpoint: ``{"name", "version", "step", "value"}``, 2xx when done."""

    async def rotate(request: web.Request) -> web.Response:
        body = await request.json()
        value, step = str(body["value"]), body["step"]
        if step == "set":
            tokens.add(value)
        elif step == "retire":
            tokens.remove(value)
        elif step != "test" or not tokens.accepts(f"Bearer {value}".encode()):
            return web.json_response({"error": f"cannot {step} that value"}, status=409)
        return web.json_response({"done": step})

    return rotate


def _app(
    tokens: _Tokens, data: ErpData, webhook: PrivacyWebhook, rotation: _Tokens | None
) -> web.Application:
    @web.middleware
    async def require_token(request: web.Request, handler: Any) -> web.StreamResponse:
        supplied = request.headers.get("Authorization", "").encode()
        # The privacy webhook authenticates Interlock by its request signature instead,
        # the rotation endpoint by its own token.
        checked = rotation if request.path == ROTATION_PATH else tokens
        if request.path != PRIVACY_PATH and (checked is None or not checked.accepts(supplied)):
            return web.json_response({"error": "unauthorised"}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    async def order(request: web.Request) -> web.Response:
        found = data.orders.get(request.match_info["id"])
        if found is None:
            return web.json_response({"error": "no such order"}, status=404)
        response = web.json_response(found)
        # As most servers do: gzip when the caller's Accept-Encoding allows it.
        response.enable_compression()
        return response

    async def orders(_: web.Request) -> web.Response:
        return web.json_response({"items": list(data.orders.values()), "next": None})

    async def sales_lines(_: web.Request) -> web.Response:
        lines = [
            {
                "order_id": o["id"],
                "customer_pseudonym": f"c-{i:04d}",
                "sku": "SKU-1",
                "quantity": 1,
                "net_amount": o["total"],
                "booked_on": "2026-11-02",
            }
            for i, o in enumerate(data.orders.values())
        ]
        return web.json_response({"lines": lines})

    async def sleep(request: web.Request) -> web.Response:
        await asyncio.sleep(min(float(request.match_info["seconds"]), 30.0))
        return web.json_response({"slept": True})

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound("https://example.com/elsewhere")

    async def big(request: web.Request) -> web.Response:
        size = min(int(request.match_info["size"]), 64 * 1024 * 1024)
        return web.Response(body=b"x" * size, content_type="application/octet-stream")

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path": request.raw_path,
                "headers": {
                    k: v for k, v in request.headers.items() if k.lower() != "authorization"
                },
                "authorization_ok": True,
                "body_bytes": len(body),
                # What arrived, so tests can see what validation forwarded (capped).
                "body": body[:65536].decode("utf-8", "replace"),
            }
        )

    async def leaky(_: web.Request) -> web.Response:
        # Response headers a careless upstream sends: versions, debug handles, its session.
        return web.json_response(
            {"items": 3},
            headers={
                "Server": "Apache/2.4.1 (Unix) PHP/5.6.40",
                "X-Powered-By": "PHP/5.6.40",
                "X-Debug-Token": "a1b2c3",
                "Set-Cookie": "PHPSESSID=upstream-session; Path=/",
                "X_Backend_Host": "erp-node-7.internal",
                "X-Total-Count": "3",
                "ETag": '"v1"',
                "Cache-Control": "private, max-age=60",
            },
        )

    async def fail(request: web.Request) -> web.Response:
        # An error page that spills a traceback, SQL and a password (CWE-209).
        status = min(max(int(request.match_info["status"]), 500), 599)
        page = (
            "Traceback (most recent call last):\n"
            '  File "/srv/erp/orders.py", line 42, in load\n'
            "psycopg.errors.UndefinedTable: SELECT * FROM orders_secret WHERE id = 1\n"
            "connection: host=db.internal user=erp password=hunter2\n"
        )
        return web.Response(status=status, text=page, headers={"X-Powered-By": "PHP/5.6.40"})

    async def whoami(request: web.Request) -> web.Response:
        # The client certificate the caller (the gateway) presented, when mutual TLS is on.
        transport = request.transport
        tls = transport.get_extra_info("ssl_object") if transport is not None else None
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        if not der:
            return web.json_response({"serial": None, "identity": None})
        certificate = x509.load_der_x509_certificate(der)
        uris = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.UniformResourceIdentifier)
        return web.json_response(
            {
                "serial": format(certificate.serial_number, "x"),
                "identity": uris[0] if uris else None,
            }
        )

    app = web.Application(middlewares=[require_token])
    app.router.add_get("/whoami", whoami)
    app.router.add_get("/sap/opu/odata/orders/{id}", order)
    app.router.add_get("/sap/opu/odata/orders", orders)
    app.router.add_get("/sap/opu/odata/sales_lines", sales_lines)
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    app.router.add_get("/sleep/{seconds}", sleep)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/big/{size}", big)
    app.router.add_get("/leaky", leaky)
    app.router.add_get("/fail/{status}", fail)
    app.router.add_post(PRIVACY_PATH, webhook.handle)
    app.router.add_post(ROTATION_PATH, _rotation(tokens))
    return app


async def start_sample_erp(
    certificate: Path,
    private_key: Path,
    token: str | None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    client_ca: Path | None = None,
    token_file: Path | None = None,
    jwks: JwksSource | None = None,
    names: tuple[str, ...] = ("localhost", "127.0.0.1"),
    rotation_token: str | None = None,
) -> SampleErp:
    """Serve the sample ERP over HTTPS with the given certificate; port 0 picks a free one.

    With ``client_ca`` it requires a client certificate issued under that CA (mutual TLS).
    With ``token_file`` it accepts every token listed in that file (one per
    line), re-read whenever the file changes, instead of ``token``. ``jwks``
    is Interlock's key set (a document, a function returning one, or a file),
    whose signatures the privacy webhook takes (None: it refuses every request);
    ``names`` are the host names it is reached by (its certificate's).
    ``rotation_token``: the bearer token of its rotation endpoint (None: refused).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificate, private_key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(client_ca))
    data = ErpData()
    webhook = PrivacyWebhook(data, jwks, names)
    rotation = None if rotation_token is None else _Tokens(rotation_token, None)
    app = _app(_Tokens(token, token_file), data, webhook, rotation)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context)
    await site.start()
    bound = next(a[1] for a in runner.addresses if isinstance(a, tuple))
    return SampleErp(runner, int(bound), data)


def main() -> None:
    """Run as a process: ``python -m interlock.testing.sample_erp --cert C --key K --token-file T``.

    ``--jwks-file F``: Interlock's key set for the privacy webhook, re-read when it changes.
    ``--rotation-token-file F``: the rotation endpoint's bearer token (the file's one line).

    Prints ``PORT <n>`` once listening, then serves until SIGTERM or SIGINT.
    """
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--token-file", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--client-ca", type=Path, default=None)
    parser.add_argument("--jwks-file", type=Path, default=None)
    parser.add_argument("--rotation-token-file", type=Path, default=None)
    args = parser.parse_args()
    rotation = args.rotation_token_file

    async def run() -> None:
        erp = await start_sample_erp(
            args.cert,
            args.key,
            None,
            port=args.port,
            client_ca=args.client_ca,
            token_file=args.token_file,
            jwks=args.jwks_file,
            rotation_token=None if rotation is None else rotation.read_text().strip(),
        )
        sys.stdout.write(f"PORT {erp.port}\n")
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await erp.stop()

    asyncio.run(run())


if __name__ == "__main__":
    main()
