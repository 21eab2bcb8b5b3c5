"""The listener's TLS: 1.3 preferred, 1.2 with intermediate suites only, nothing older."""

from __future__ import annotations

import socket
import ssl
import warnings

import pytest

from interlock.testing.gateway import Env


def _handshake(env: Env, context: ssl.SSLContext) -> ssl.SSLSocket:
    plain = socket.create_connection(("127.0.0.1", env.port), timeout=5)
    return context.wrap_socket(plain, server_hostname="127.0.0.1")


def test_tls_13_is_negotiated_by_default(env: Env) -> None:
    """A modern client gets TLS 1.3."""
    with _handshake(env, env.context()) as tls:
        assert tls.version() == "TLSv1.3"
        assert tls.compression() is None


def test_tls_12_uses_an_aead_ecdhe_suite(env: Env) -> None:
    """A TLS 1.2 client gets a forward-secret AEAD suite from the intermediate list."""
    context = env.context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with _handshake(env, context) as tls:
        assert tls.version() == "TLSv1.2"
        cipher = tls.cipher()
        assert cipher is not None
        name, _, _ = cipher
        assert name.startswith("ECDHE-")
        assert "GCM" in name or "CHACHA20" in name


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_tls_below_12_is_refused(env: Env, version: ssl.TLSVersion) -> None:
    """TLS 1.0 and 1.1 clients cannot complete a handshake."""
    context = env.context()
    with warnings.catch_warnings():
        # Deliberately configuring a deprecated protocol to show it is refused.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = version
        context.maximum_version = version
    context.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        _handshake(env, context).close()


def test_weak_tls_12_suites_are_refused(env: Env) -> None:
    """A client offering only CBC / non-forward-secret suites gets no handshake."""
    context = env.context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("AES128-SHA:AES256-SHA:AES128-SHA256:ECDHE-RSA-AES128-SHA")
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        _handshake(env, context).close()
