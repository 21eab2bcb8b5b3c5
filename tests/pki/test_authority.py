"""The PKI: chains verify against the root, names and usages are exact, renewals are recorded."""

from __future__ import annotations

import ipaddress
import threading
from datetime import timedelta
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from interlock.crypto.pkix import (
    certificate_pem,
    intermediate_ca,
    issue_client_certificate,
    self_signed_ca,
)
from interlock.errors import InvalidRequestError, NotFoundError
from interlock.pki import Pki
from interlock.store import Deployment
from interlock.testing.clock import ManualClock

TRUST_DOMAIN = "example.test"
T = TypeVar("T", bound=x509.ExtensionType)


@pytest.fixture
def pki(deployment: Deployment, clock: ManualClock) -> Pki:
    """The PKI of a fresh deployment on each store backend, on a hand-moved clock."""
    created = Pki(
        deployment.engine, deployment.keyring, deployment.deployment_id, TRUST_DOMAIN, clock
    )
    created.ensure()
    return created


def _chain(pem: bytes) -> tuple[x509.Certificate, list[x509.Certificate]]:
    leaf, *rest = x509.load_pem_x509_certificates(pem)
    return leaf, rest


def _policy(pki: Pki, clock: ManualClock) -> PolicyBuilder:
    return PolicyBuilder().store(Store([pki.root_certificate()])).time(clock.now)


def _ext(certificate: x509.Certificate, kind: type[T]) -> x509.Extension[T]:
    return certificate.extensions.get_extension_for_class(kind)


def test_root_and_intermediate_have_the_path_lengths_of_a_two_level_pki(pki: Pki) -> None:
    """The root may sign one CA below it; the intermediate signs end entities only."""
    root = pki.root_certificate()
    intermediate = x509.load_pem_x509_certificate(pki.chain_pem())
    assert _ext(root, x509.BasicConstraints).value == x509.BasicConstraints(True, 1)
    assert _ext(intermediate, x509.BasicConstraints).value == x509.BasicConstraints(True, 0)
    assert _ext(intermediate, x509.BasicConstraints).critical
    assert _ext(intermediate, x509.KeyUsage).value.key_cert_sign
    intermediate.verify_directly_issued_by(root)
    assert pki.root_certificate_pem().startswith(b"-----BEGIN CERTIFICATE-----")


def test_client_certificate_chains_to_the_root_with_its_spiffe_identity(
    pki: Pki, clock: ManualClock
) -> None:
    """ClientVerifier accepts leaf + intermediate; the URI SAN is the only name; 30 days."""
    issued = pki.issue_client("order-sync")
    leaf, intermediates = _chain(issued.certificate_pem)
    verified = _policy(pki, clock).build_client_verifier().verify(leaf, intermediates)
    identity = x509.UniformResourceIdentifier("spiffe://example.test/client/order-sync")
    assert verified.subjects == [identity]
    assert pki.client_identity("order-sync") == identity.value
    assert _ext(leaf, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    usage = _ext(leaf, x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign
    assert _ext(leaf, x509.BasicConstraints).value.ca is False
    assert issued.not_after == clock.now + timedelta(days=30)
    assert issued.serial == format(leaf.serial_number, "x")
    assert b"PRIVATE KEY" in issued.private_key_pem
    assert "private_key_pem" not in repr(issued)


def test_server_certificate_verifies_for_each_host_and_not_as_a_client(
    pki: Pki, clock: ManualClock
) -> None:
    """ServerVerifier accepts it for every DNS name and IP; its EKU is serverAuth only."""
    issued = pki.issue_server(["API.example.test", "10.1.2.3"], timedelta(days=90))
    leaf, intermediates = _chain(issued.certificate_pem)
    subjects = (x509.DNSName("api.example.test"), x509.IPAddress(ipaddress.ip_address("10.1.2.3")))
    for subject in subjects:
        chain = _policy(pki, clock).build_server_verifier(subject).verify(leaf, intermediates)
        assert chain[-1] == pki.root_certificate()
    with pytest.raises(VerificationError):
        _policy(pki, clock).build_server_verifier(x509.DNSName("other.test")).verify(
            leaf, intermediates
        )
    with pytest.raises(VerificationError):  # serverAuth only: not usable as a client
        _policy(pki, clock).build_client_verifier().verify(leaf, intermediates)
    assert _ext(leaf, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH]
    )


def test_client_certificate_is_refused_by_a_server_verifier(pki: Pki, clock: ManualClock) -> None:
    """A client certificate cannot pose as a server."""
    leaf, intermediates = _chain(pki.issue_client("app").certificate_pem)
    verifier = _policy(pki, clock).build_server_verifier(x509.DNSName("app"))
    with pytest.raises(VerificationError):
        verifier.verify(leaf, intermediates)


def test_certificate_from_another_ca_does_not_verify(pki: Pki, clock: ManualClock) -> None:
    """A chain is only as good as its root: another PKI's leaf fails against this root."""
    leaf, intermediates = _chain(pki.issue_client("app").certificate_pem)
    verifier = _policy(pki, clock).build_client_verifier()
    other_leaf, other_intermediates = _chain(_rogue_chain(clock))
    verifier.verify(leaf, intermediates)
    with pytest.raises(VerificationError):
        verifier.verify(other_leaf, other_intermediates)
    with pytest.raises(VerificationError):  # the leaf alone lacks its intermediate
        verifier.verify(leaf, [])


def _rogue_chain(clock: ManualClock) -> bytes:
    """The same identity from a CA this deployment never heard of."""
    root, root_key = self_signed_ca("rogue", timedelta(days=10), path_length=1, now=clock.now)
    middle, middle_key = intermediate_ca(
        root, root_key, "rogue issuing", timedelta(days=5), now=clock.now
    )
    leaf, _ = issue_client_certificate(
        middle, middle_key, "spiffe://example.test/client/app", timedelta(days=1), now=clock.now
    )
    return certificate_pem(leaf) + certificate_pem(middle)


@pytest.mark.parametrize(
    ("kind", "lifetime"),
    [
        ("client", timedelta(minutes=59)),
        ("client", timedelta(days=91)),
        ("server", timedelta(minutes=30)),
        ("server", timedelta(days=398)),
    ],
)
def test_lifetimes_outside_the_limits_are_refused(pki: Pki, kind: str, lifetime: timedelta) -> None:
    """One hour at least; 90 days for clients, 397 for servers at most; nothing is recorded."""
    issue = pki.issue_client if kind == "client" else lambda _, t: pki.issue_server(["a.test"], t)
    with pytest.raises(InvalidRequestError, match="lives from 1 hour"):
        issue("app", lifetime)
    assert pki.list() == []


def test_the_shortest_lifetime_is_one_hour(pki: Pki, clock: ManualClock) -> None:
    """Hours are allowed down to one."""
    assert pki.issue_client("app", timedelta(hours=1)).not_after == clock.now + timedelta(hours=1)
    assert pki.issue_server(["a.test"], timedelta(days=397)).not_after == clock.now + timedelta(
        days=397
    )


@pytest.mark.parametrize("name", ["App", "-x", "a/b", "", "a" * 64, "x y"])
def test_bad_client_names_are_refused(pki: Pki, name: str) -> None:
    """Client names follow the manifest's rule, so a URI cannot be bent by a name."""
    with pytest.raises(InvalidRequestError, match="not a client name"):
        pki.issue_client(name)


@pytest.mark.parametrize("hosts", [[], ["*.example.test"], ["a..b"], ["bad_host"], ["x" * 254]])
def test_bad_host_names_are_refused(pki: Pki, hosts: list[str]) -> None:
    """No wildcards, no empty lists, RFC 1123 names or IP addresses only."""
    with pytest.raises(InvalidRequestError):
        pki.issue_server(hosts)


def test_ensure_is_idempotent_and_safe_when_processes_race(
    deployment: Deployment, clock: ManualClock
) -> None:
    """Four handles racing to create the CAs end with one root and one intermediate."""
    handles = [
        Pki(deployment.engine, deployment.keyring, deployment.deployment_id, TRUST_DOMAIN, clock)
        for _ in range(4)
    ]
    errors: list[BaseException] = []

    def run(pki: Pki) -> None:
        try:
            pki.ensure()
        except BaseException as exc:  # noqa: BLE001  (reported by the assertion below)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(h,)) for h in handles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    roots = {h.root_certificate_pem() for h in handles}
    chains = {h.chain_pem() for h in handles}
    assert len(roots) == 1
    assert len(chains) == 1
    handles[0].ensure()
    assert handles[0].root_certificate_pem() in roots


def test_unknown_serials_are_not_found(pki: Pki) -> None:
    """Revoke, renew and get say which serial is unknown; malformed ones are refused."""
    with pytest.raises(NotFoundError, match="abc"):
        pki.revoke("abc")
    with pytest.raises(NotFoundError):
        pki.renew("abc")
    for bad in ("xyz", "0", "-1", "1" * 41):
        with pytest.raises(InvalidRequestError):
            pki.get(bad)


def test_serials_are_found_whatever_their_spelling(pki: Pki) -> None:
    """Upper case, colons and leading zeros (as openssl prints them) name the same serial."""
    serial = pki.issue_client("app").serial
    padded = "00" + serial.zfill(len(serial) + len(serial) % 2)
    spelled = ":".join(padded[i : i + 2] for i in range(0, len(padded), 2))
    assert pki.get(spelled.upper()).serial == serial
