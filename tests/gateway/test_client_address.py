"""The caller's address: the TCP peer, or what trusted proxies report, read right to left."""

from __future__ import annotations

import re
from ipaddress import ip_network
from pathlib import Path

import pytest
from multidict import CIMultiDict

import interlock
from interlock.errors import Refusal
from interlock.gateway.client_address import (
    ProxyHeader,
    TrustedProxies,
    derive_client_address,
)
from interlock.gateway.problems import REFUSALS

BALANCERS = TrustedProxies((ip_network("10.0.0.0/8"), ip_network("2001:db8:ffff::/48")))
FORWARDED = TrustedProxies(BALANCERS.networks, "forwarded")


def _derive(
    peer: str | None, proxies: TrustedProxies = BALANCERS, *pairs: tuple[str, str]
) -> str | None:
    return derive_client_address(peer, CIMultiDict(pairs), proxies)


def test_nobody_is_trusted_by_default() -> None:
    """Without trusted proxies the headers are the caller's own words: ignored."""
    headers = ("X-Forwarded-For", "198.51.100.7"), ("Forwarded", "for=198.51.100.8")
    assert _derive("10.0.0.1", TrustedProxies(), *headers) == "10.0.0.1"


def test_headers_from_an_untrusted_peer_are_ignored() -> None:
    assert _derive("192.0.2.50", BALANCERS, ("X-Forwarded-For", "198.51.100.7")) == "192.0.2.50"
    assert _derive("192.0.2.50", FORWARDED, ("Forwarded", "for=198.51.100.7")) == "192.0.2.50"


def test_a_trusted_peer_reports_the_caller() -> None:
    assert _derive("10.0.0.1", BALANCERS, ("X-Forwarded-For", "198.51.100.7")) == "198.51.100.7"


def test_a_trusted_peer_without_the_header_is_the_caller() -> None:
    assert _derive("10.0.0.1") == "10.0.0.1"


def test_the_walk_skips_trusted_hops_and_stops_at_the_first_untrusted_one() -> None:
    """Everything left of the first untrusted address was written by the caller."""
    chain = "6.6.6.6, 198.51.100.7, 10.1.1.1, 10.2.2.2"
    assert _derive("10.0.0.1", BALANCERS, ("X-Forwarded-For", chain)) == "198.51.100.7"


def test_several_header_lines_are_one_list_in_order() -> None:
    """RFC 9110 §5.3: the lines join with commas; the last line is the nearest proxy's."""
    lines = ("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.7, 10.1.1.1")
    assert _derive("10.0.0.1", BALANCERS, *lines) == "198.51.100.7"


def test_a_chain_of_only_trusted_hops_ends_at_its_origin() -> None:
    assert _derive("10.0.0.1", BALANCERS, ("X-Forwarded-For", "10.9.9.9, 10.1.1.1")) == "10.9.9.9"


def test_only_the_configured_header_is_read() -> None:
    """A balancer that writes X-Forwarded-For passes the caller's Forwarded through, and back."""
    both = ("X-Forwarded-For", "198.51.100.7"), ("Forwarded", "for=6.6.6.6")
    assert _derive("10.0.0.1", BALANCERS, *both) == "198.51.100.7"
    both = ("X-Forwarded-For", "6.6.6.6"), ("Forwarded", "for=198.51.100.7")
    assert _derive("10.0.0.1", FORWARDED, *both) == "198.51.100.7"


def test_forwarded_chains_with_quoted_ipv6_and_ports() -> None:
    field = 'for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, for="[2001:db8:ffff::2]"'
    assert _derive("10.0.0.1", FORWARDED, ("Forwarded", field)) == "2001:db8:cafe::17"


def test_ipv6_peers_and_hops() -> None:
    """A bare IPv6 in X-Forwarded-For, a bracketed one with a port, an IPv6 proxy."""
    header = ("X-Forwarded-For", "2001:db8:1::5, 2001:db8:ffff::9")
    assert _derive("2001:db8:ffff::1", BALANCERS, header) == "2001:db8:1::5"
    header = ("X-Forwarded-For", "[2001:db8:1::5]:51000")
    assert _derive("10.0.0.1", BALANCERS, header) == "2001:db8:1::5"
    header = ("X-Forwarded-For", "198.51.100.7:51000")
    assert _derive("10.0.0.1", BALANCERS, header) == "198.51.100.7"


def test_ipv4_mapped_addresses_count_as_the_ipv4_address() -> None:
    """A dual-stack listener sees ::ffff:10.0.0.1; the budget of ::ffff:a.b.c.d is a.b.c.d's."""
    header = ("X-Forwarded-For", "::ffff:198.51.100.7")
    assert _derive("::ffff:10.0.0.1", BALANCERS, header) == "198.51.100.7"


def test_addresses_are_written_one_way() -> None:
    """One budget per address, however a proxy spells it."""
    header = ("X-Forwarded-For", "2001:DB8:0:0:0:0:0:5")
    assert _derive("10.0.0.1", BALANCERS, header) == "2001:db8::5"


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("forwarded", "for=unknown"),
        ("forwarded", 'for="_hidden"'),
        ("forwarded", "proto=https"),  # an element without for=
        ("x-forwarded-for", "unknown"),
    ],
)
def test_an_unknown_hop_stops_at_the_last_known_address(header: ProxyHeader, field: str) -> None:
    """The proxy hid the caller: the walk never reads the caller's own words beyond it."""
    proxies = TrustedProxies(BALANCERS.networks, header)
    name, key = ("Forwarded", "for=") if header == "forwarded" else ("X-Forwarded-For", "")
    caller, proxy = f"{key}198.51.100.6", f"{key}10.5.5.5"
    assert _derive("10.0.0.1", proxies, (name, f"{caller}, {field}")) == "10.0.0.1"
    assert _derive("10.0.0.1", proxies, (name, f"{caller}, {field}, {proxy}")) == "10.5.5.5"


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("x-forwarded-for", "not-an-address"),
        ("x-forwarded-for", "198.51.100.7, 300.1.1.1"),
        ("x-forwarded-for", "fe80::1%eth0"),
        ("x-forwarded-for", "1.2.3.4, " * 1000 + "1.2.3.4"),
        ("forwarded", 'for="198.51.100.7'),
        ("forwarded", "for=[2001:db8::1]"),
        ("forwarded", "for=2001:db8::1"),
    ],
)
def test_a_malformed_header_from_a_trusted_proxy_is_refused_with_400(
    header: ProxyHeader, field: str
) -> None:
    """Falling back to the proxy's address would charge everyone's budget for one request."""
    proxies = TrustedProxies(BALANCERS.networks, header)
    name = "Forwarded" if header == "forwarded" else "X-Forwarded-For"
    with pytest.raises(Refusal) as refused:
        _derive("10.0.0.1", proxies, (name, field))
    assert REFUSALS[refused.value.code].status == 400
    assert field not in refused.value.detail


def test_garbage_left_of_the_caller_is_never_read() -> None:
    """The caller may write anything before the address its balancer appended."""
    header = ("X-Forwarded-For", "<script>, ;;, 198.51.100.7")
    assert _derive("10.0.0.1", BALANCERS, header) == "198.51.100.7"


def test_garbage_from_an_untrusted_peer_is_ignored_not_refused() -> None:
    assert _derive("192.0.2.50", BALANCERS, ("X-Forwarded-For", "garbage")) == "192.0.2.50"


def test_peers_that_are_not_ip_addresses_are_never_trusted() -> None:
    assert _derive(None, BALANCERS, ("X-Forwarded-For", "198.51.100.7")) is None
    assert _derive("", BALANCERS, ("X-Forwarded-For", "198.51.100.7")) == ""


def test_nothing_else_takes_the_tcp_peer_for_the_caller() -> None:
    """Every use of the caller's address goes through client_address (a source scan)."""
    package = Path(interlock.__file__).parent
    readers = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if re.search(r"\.remote\b", path.read_text(encoding="utf-8"))
    )
    assert readers == ["gateway/client_address.py"]
