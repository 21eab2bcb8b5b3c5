"""Metrics on a listener of their own, with bounded labels (issue 18 item 10).

Before: ``/metrics`` answered anyone on the gateway's listener, and labels could
follow the concrete path, so a client allowed to write secrets could create
label sets at will.
"""

from __future__ import annotations

import asyncio
import http.client
import re
import ssl
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from interlock.config.remote_tls import is_loopback
from interlock.config.settings import Settings
from interlock.errors import ConfigError
from interlock.gateway.metrics import GatewayMetrics
from interlock.gateway.metrics_listener import metrics_tls, start_metrics_listener
from interlock.testing.gateway import Env
from interlock.testing.tls import make_tls

_ROUTE = re.compile(r'interlock_requests_total\{[^}]*route="([^"]*)"')


def _value(text: str, sample: str) -> float:
    """The value of one sample line (``name{labels}``) in the exposition ``text``."""
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    raise AssertionError(f"no sample {sample}")


def test_the_main_listener_answers_404_for_metrics(env: Env) -> None:
    """/metrics on the gateway's listener is no endpoint: a 404 problem, no metrics text."""
    status, headers, body = env.request("GET", "/metrics")
    assert status == 404
    assert headers["content-type"] == "application/problem+json"
    assert "interlock_requests_total" not in str(body)


def test_the_route_label_stays_the_template_after_fifty_secret_names(env: Env) -> None:
    """50 secret names and 50 unknown paths add no label: the template and unmatched only."""
    before = set(_ROUTE.findall(env.metrics()))
    for n in range(50):
        assert env.request("GET", f"/v1/secrets/alpha/db{n}")[0] == 401
        assert env.request("GET", f"/nowhere/{n}")[0] == 404
    routes = set(_ROUTE.findall(env.metrics()))
    assert routes - before <= {"/v1/secrets/{name}", "unmatched"}
    assert {"/v1/secrets/{name}", "unmatched"} <= routes
    assert not [route for route in routes if "alpha" in route or "nowhere" in route]


def test_the_metrics_listener_serves_process_and_gateway_metrics(env: Env) -> None:
    """The standard process_* families and the counters and gauges the issue asks for."""
    text = env.metrics()
    for family in (
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        'interlock_authentication_failures_total{reason="unauthorized"}',
        "interlock_tokens_issued_total",
        "interlock_audit_queue_depth",
        "interlock_lineage_queue_depth",
        "interlock_lineage_records_lost",
        "interlock_audit_entries_lost",
        "interlock_certificate_expiry_timestamp_seconds",
    ):
        assert family in text, family
    assert "expiry_days" not in text


def test_the_metrics_listener_answers_metrics_only(env: Env) -> None:
    """Any other path on the metrics listener is a 404; plain HTTP, on loopback."""
    listener = env.gateway.metrics_listener
    assert listener is not None
    parts = urlsplit(listener.url)
    assert (parts.scheme, parts.hostname) == ("http", "127.0.0.1")
    connection = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=10)
    try:
        connection.request("GET", "/orders/1001")
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    assert response.status == 404


def test_an_authentication_failure_increments_its_reason(env: Env) -> None:
    """A wrong API key counts once under reason="unauthorized"; another reason does not move."""
    unauthorized = 'interlock_authentication_failures_total{reason="unauthorized"}'
    ambiguous = 'interlock_authentication_failures_total{reason="ambiguous-credentials"}'
    before = env.metrics()
    status, _, _ = env.request(
        "GET", "/orders/1001", {"X-API-Key": "ilk_wrong"}, source="127.0.0.18"
    )
    assert status == 401
    after = env.metrics()
    assert _value(after, unauthorized) == _value(before, unauthorized) + 1
    assert _value(after, ambiguous) == _value(before, ambiguous)


def test_a_refused_token_request_counts_as_invalid_client_and_an_issued_one_as_issued(
    env: Env,
) -> None:
    """The token endpoint: a wrong secret is invalid_client, a token issued counts once."""
    refused = 'interlock_authentication_failures_total{reason="invalid_client"}'
    issued = "interlock_tokens_issued_total"
    form = urlencode({"grant_type": "client_credentials"}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    before = env.metrics()
    wrong = {**headers, **env.basic("ilcs_wrong")}
    assert env.request("POST", "/oauth2/token", wrong, form, source="127.0.0.18")[0] == 401
    with env.client_secret() as secret:
        ok = {**headers, **env.basic(secret)}
        assert env.request("POST", "/oauth2/token", ok, form)[0] == 200
    after = env.metrics()
    assert _value(after, refused) == _value(before, refused) + 1
    assert _value(after, issued) == _value(before, issued) + 1


def test_a_port_in_use_is_a_configuration_error() -> None:
    """A second metrics listener on a bound port: ConfigError naming the setting."""

    async def twice() -> None:
        first = await start_metrics_listener(GatewayMetrics(), "127.0.0.1", 0, None)
        try:
            port = urlsplit(first.url).port or 0
            with pytest.raises(ConfigError, match="INTERLOCK_METRICS_LISTEN"):
                await start_metrics_listener(GatewayMetrics(), "127.0.0.1", port, None)
        finally:
            await first.stop()

    asyncio.run(twice())


def test_off_loopback_the_metrics_are_served_over_the_listeners_tls(tmp_path: Path) -> None:
    """A non-loopback address gets the gateway listener's TLS context; verified by the CA."""
    tls = make_tls(tmp_path, hosts=("localhost", "127.0.0.1"))
    listener_context = tls.server_context()
    assert metrics_tls("192.0.2.10", listener_context) is listener_context
    assert metrics_tls("127.0.0.1", listener_context) is None

    async def scrape() -> tuple[str, int, str]:
        # Bound on loopback here (a test binds no other address), with the context
        # metrics_tls gives a non-loopback one.
        served = await start_metrics_listener(GatewayMetrics(), "127.0.0.1", 0, listener_context)
        try:
            url = urlsplit(served.url)
            client = ssl.create_default_context(cafile=str(tls.ca_file))
            text = await asyncio.to_thread(_get, url.port or 0, client)
        finally:
            await served.stop()
        return url.scheme, url.port or 0, text

    scheme, _, text = asyncio.run(scrape())
    assert scheme == "https"
    assert "process_resident_memory_bytes" in text


def _get(port: int, context: ssl.SSLContext) -> str:
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("GET", "/metrics")
        return connection.getresponse().read().decode()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("[::1]:9464", ("::1", 9464)),
        ("off", None),
        ("OFF", None),
    ],
)
def test_the_metrics_listen_setting(value: str, address: tuple[str, int] | None) -> None:
    """HOST:PORT or off; the default is loopback only."""
    assert Settings(metrics_listen=value).metrics_address == address
    assert Settings().metrics_address == ("127.0.0.1", 9464)


@pytest.mark.parametrize("value", ["9464", "localhost", "127.0.0.1:port", ":9464", "h:70000"])
def test_a_malformed_metrics_listen_setting_is_refused(value: str) -> None:
    """Not HOST:PORT and not off: refused at load."""
    with pytest.raises(ValueError, match="HOST:PORT"):
        Settings(metrics_listen=value)


def test_only_loopback_addresses_count_as_loopback() -> None:
    """Plain HTTP only where nothing off the host can reach it."""
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")  # noqa: S104  (the point of the test)
    assert not is_loopback("192.0.2.10")
    assert not is_loopback("metrics.example")
