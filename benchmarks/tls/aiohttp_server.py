"""The stack floor for ``benchmarks/tls/run.py``: aiohttp on uvloop with Interlock's TLS context.

Nothing but ``GET /healthz`` answering a small JSON body, with the listener
context ``interlock serve`` uses (``interlock.gateway.tls.server_context``:
Mozilla intermediate, the same certificate and key). What ``interlock serve``
costs per connection beyond this is Interlock's own work; what this costs
beyond nginx is the Python stack's.

Run by the benchmark: ``python benchmarks/tls/aiohttp_server.py CERT KEY PORT``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvloop
from aiohttp import web

from interlock.gateway.tls import server_context


async def health(_request: web.Request) -> web.Response:
    """What the other servers answer: a small JSON body."""
    return web.json_response({"status": "ok"})


def main() -> None:
    """Serve on 127.0.0.1:PORT until terminated."""
    certificate, key, port = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    app = web.Application()
    app.router.add_get("/healthz", health)
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        ssl_context=server_context(certificate, key),
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
