"""A reload that changes tls.min_version reaches the listener: new handshakes follow it."""

from __future__ import annotations

import socket
import ssl

from interlock.testing.gateway import Env


def _handshake(env: Env, version: ssl.TLSVersion) -> bool:
    """Whether a client speaking only ``version`` completes a handshake with the gateway."""
    context = env.context()
    context.minimum_version = context.maximum_version = version
    try:
        with (
            socket.create_connection(("127.0.0.1", env.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1"),
        ):
            return True
    except ssl.SSLError:
        return False


def test_raising_the_tls_floor_by_reload_refuses_tls_12_handshakes(env: Env) -> None:
    """1.2 before; after a reload to 1.3 a 1.2-only client is refused; back after lowering."""
    original = env.manifest_path.read_text()
    assert _handshake(env, ssl.TLSVersion.TLSv1_2)
    try:
        env.manifest_path.write_text(
            original.replace("version: 1\n", 'version: 1\ntls: {min_version: "1.3"}\n', 1)
        )
        assert env.gateway.reload() is True
        assert not _handshake(env, ssl.TLSVersion.TLSv1_2)
        assert _handshake(env, ssl.TLSVersion.TLSv1_3)
    finally:
        env.manifest_path.write_text(original)
        assert env.gateway.reload() is True
    assert _handshake(env, ssl.TLSVersion.TLSv1_2)
