"""A CA made at run time and HTTPS test servers that present its certificates.

Tests never ship keys: each makes its own CA (valid one day) and a server
certificate for ``localhost``, and trusts that CA explicitly. Verification
stays on everywhere.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from interlock.crypto.keyfile import write_private_file
from interlock.crypto.pkix import (
    certificate_pem,
    issue_server_certificate,
    private_key_pem,
    self_signed_ca,
)

__all__ = ["LocalTls", "https_server", "make_tls"]


@dataclass(frozen=True)
class LocalTls:
    """A test CA's certificate file, and a server certificate and key it issued."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting the certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_tls(
    folder: Path,
    name: str = "Interlock test CA",
    hosts: tuple[str, ...] = ("localhost",),
    lifetime: timedelta = timedelta(days=1),
) -> LocalTls:
    """A CA made now and a certificate for ``hosts``, written under ``folder`` (key 0600)."""
    ca, ca_key = self_signed_ca(name, lifetime)
    certificate, key = issue_server_certificate(ca, ca_key, list(hosts), lifetime)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ca.pem").write_bytes(certificate_pem(ca))
    (folder / "server.pem").write_bytes(certificate_pem(certificate))
    write_private_file(folder / "server.key", private_key_pem(key))
    return LocalTls(folder / "ca.pem", folder / "server.pem", folder / "server.key")


@contextmanager
def https_server(
    handler: type[BaseHTTPRequestHandler], tls: LocalTls, port: int = 0
) -> Iterator[ThreadingHTTPServer]:
    """``handler`` served over TLS on 127.0.0.1 (``port`` 0: any) until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.socket = tls.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
