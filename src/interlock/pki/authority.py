"""Interlock's own PKI: issue, renew and revoke client, server and AS2 certificates.

Clients trust the root certificate (``pki:internal`` in the manifest, the
gateway's ``ca.pem``); the issuing intermediate signs every end-entity
certificate and the CRL, and travels with each certificate as its chain.
Client certificates name their holder by a SPIFFE URI SAN only
(``spiffe://TRUST-DOMAIN/client/NAME``). Lifetimes are short by default and
capped; a renewal leaves the old certificate valid until it expires (its
holder needs time to switch) and records which certificate replaced it.
Private keys are returned once and never stored here (Interlock's own AS2
key is sealed in the vault by its caller, :mod:`interlock.files.as2_identity`).
An AS2 certificate (kind ``as2``) is RSA 3072 for S/MIME signing and
encryption, named ``CN=NAME``, and lives up to 397 days (a year by default:
partners install it by hand).
"""

from __future__ import annotations

import builtins
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from sqlalchemy import Engine, select, update

from interlock.clock import Clock, utc_now
from interlock.config.manifest import NAME_PATTERN
from interlock.crypto import Keyring
from interlock.crypto.pkix import (
    BACKDATE,
    Certificate,
    EndEntityKey,
    PrivateKey,
    Revocation,
    certificate_pem,
    certificate_revocation_list,
    issue_as2_certificate,
    issue_client_certificate,
    issue_server_certificate,
    issued_by,
    load_certificate_pem,
    private_key_pem,
)
from interlock.errors import InvalidRequestError
from interlock.pki.authorities import Authorities, Authority
from interlock.pki.inventory import TABLE, CertificateInfo, Kind, find, select_listed
from interlock.pki.rfc5280 import check_reason, serial_hex

__all__ = [
    "CRL_VALIDITY",
    "DEFAULT_AS2_LIFETIME",
    "DEFAULT_LIFETIME",
    "MAX_AS2_LIFETIME",
    "MAX_CLIENT_LIFETIME",
    "MAX_SERVER_LIFETIME",
    "MIN_LIFETIME",
    "CertificateInfo",
    "Issued",
    "Pki",
]

DEFAULT_LIFETIME: Final = timedelta(days=30)
MIN_LIFETIME: Final = timedelta(hours=1)
MAX_CLIENT_LIFETIME: Final = timedelta(days=90)
# CA/Browser Forum Baseline Requirements §6.3.2: at most 398 days; one day of margin.
MAX_SERVER_LIFETIME: Final = timedelta(days=397)
MAX_AS2_LIFETIME: Final = MAX_SERVER_LIFETIME
DEFAULT_AS2_LIFETIME: Final = timedelta(days=365)
CRL_VALIDITY: Final = timedelta(days=1)
MAX_HOSTS: Final = 100
_NAME: Final = re.compile(NAME_PATTERN)
# RFC 1123 host names; wildcards are not issued (deny by default).
_LABEL: Final = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOST: Final = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


@dataclass(frozen=True)
class Issued:
    """A new certificate: ``certificate_pem`` is leaf then intermediate; the key is shown once."""

    serial: str
    certificate_pem: bytes
    private_key_pem: bytes = field(repr=False)
    not_after: datetime


class Pki:
    """The deployment's PKI: a root, an issuing intermediate and what it issued."""

    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        deployment_id: str,
        trust_domain: str,
        now: Clock = utc_now,
    ) -> None:
        """Bind to a deployment; ``trust_domain`` names client identities.

        ``now`` dates every certificate, CRL and revocation and decides what is
        expired or due (:mod:`interlock.clock`).
        """
        self._engine = engine
        self._trust_domain = trust_domain
        self._now = now
        self._authorities = Authorities(engine, keyring, deployment_id, now)

    def now(self) -> datetime:
        """The PKI's clock (injected in tests)."""
        return self._now()

    # -- the CAs ---------------------------------------------------------------

    def ensure(self) -> None:
        """Create the root and the intermediate if missing (idempotent, race-safe)."""
        self._authorities.ensure()

    def root_certificate(self) -> Certificate:
        """The trust anchor."""
        return self._authorities.ensure()[0].certificate

    def root_certificate_pem(self) -> bytes:
        """The trust anchor as PEM, for clients' trust stores (``ca.pem``)."""
        return certificate_pem(self.root_certificate())

    def chain_pem(self) -> bytes:
        """The issuing intermediate as PEM: what a leaf needs next to it in a chain."""
        return certificate_pem(self._authorities.ensure()[1].certificate)

    def renew_issuing(self) -> None:
        """Replace the intermediate by a new one (new key); needs the root key online.

        The old one is retired: certificates it signed keep their chain, and
        :meth:`crls` goes on signing its list until the last of them expires.
        """
        self._authorities.renew_issuing()

    def export_root(self, path: Path) -> None:
        """Write the root key to a new 0600 PEM file (then call :meth:`remove_root_key`)."""
        self._authorities.export_root(path)

    def remove_root_key(self) -> None:
        """Delete the sealed root key; issuing goes on, re-signing the intermediate waits."""
        self._authorities.remove_root_key()

    def import_root_key(self, path: Path) -> None:
        """Seal the root key from ``path`` back into the store; it must match the root."""
        self._authorities.import_root_key(path)

    # -- issuing ---------------------------------------------------------------

    def client_identity(self, name: str) -> str:
        """The SPIFFE ID of client ``name``."""
        if not _NAME.fullmatch(name):
            raise InvalidRequestError(
                f"{name!r} is not a client name: 1-63 lower-case letters, digits and '-', "
                "starting with a letter"
            )
        return f"spiffe://{self._trust_domain}/client/{name}"

    def issue_client(
        self, name: str, lifetime: timedelta = DEFAULT_LIFETIME, *, ephemeral: bool = False
    ) -> Issued:
        """A client certificate for ``name`` (URI SAN, clientAuth), at most 90 days."""
        return self.issue_client_identity(
            self.client_identity(name), lifetime, name=name, ephemeral=ephemeral
        )

    def issue_client_identity(
        self,
        identity: str,
        lifetime: timedelta = DEFAULT_LIFETIME,
        *,
        name: str | None = None,
        ephemeral: bool = False,
    ) -> Issued:
        """A client certificate for any URI ``identity`` (used by :class:`LocalCA`)."""
        label = name or identity.rstrip("/").rsplit("/", 1)[-1][:253]
        sign = self._client_signer(identity, lifetime)
        return self._issue("client", label, identity, (), ephemeral, sign)

    def issue_server(
        self,
        hosts: Sequence[str],
        lifetime: timedelta = DEFAULT_LIFETIME,
        *,
        ephemeral: bool = False,
    ) -> Issued:
        """A server certificate for DNS names and IP addresses (serverAuth), at most 397 days."""
        names = _check_hosts(hosts)
        sign = self._server_signer(names, lifetime)
        return self._issue("server", names[0], None, names, ephemeral, sign)

    def issue_as2(self, name: str, lifetime: timedelta = DEFAULT_AS2_LIFETIME) -> Issued:
        """Interlock's AS2 certificate ``CN=name``: RSA 3072, signing and key transport."""
        if not _NAME.fullmatch(name):
            raise InvalidRequestError(
                f"{name!r} is not an AS2 certificate name: 1-63 lower-case letters, digits "
                "and '-', starting with a letter"
            )
        return self._issue("as2", name, None, (), False, self._as2_signer(name, lifetime))

    def renew(self, serial: str, lifetime: timedelta | None = None) -> Issued:
        """A new certificate (new key) for the same names; the old one stays valid until expiry.

        ``lifetime`` defaults to the old certificate's. Refuses a revoked
        certificate, and one already renewed (naming its successor).
        """
        old = self.get(serial)
        if old.revoked_at is not None:
            raise InvalidRequestError(f"certificate {old.serial} is revoked; issue a new one")
        if old.replaced_by is not None:
            raise InvalidRequestError(
                f"certificate {old.serial} was already renewed as {old.replaced_by}"
            )
        wanted = lifetime or max(MIN_LIFETIME, old.not_after - old.not_before - BACKDATE)
        if old.kind == "client":
            sign = self._client_signer(old.identity or "", wanted)
        elif old.kind == "as2":
            sign = self._as2_signer(old.name, wanted)
        else:
            sign = self._server_signer(old.hosts, wanted)
        return self._issue(
            old.kind, old.name, old.identity, old.hosts, old.ephemeral, sign, replaces=old.serial
        )

    # -- the record ------------------------------------------------------------

    def get(self, serial: str) -> CertificateInfo:
        """One issued certificate; :class:`NotFoundError` if unknown."""
        with self._engine.connect() as connection:
            return find(connection, serial_hex(serial), self._now())

    def revoke(self, serial: str, reason: str = "unspecified") -> None:
        """Revoke a certificate (RFC 5280 reason name); revoking it again changes nothing."""
        check_reason(reason)
        key = serial_hex(serial)
        with self._engine.begin() as connection:
            find(connection, key, self._now())
            connection.execute(
                update(TABLE)
                .where(TABLE.c.serial == key, TABLE.c.revoked_at.is_(None))
                .values(revoked_at=self._now(), revocation_reason=reason)
            )

    def revoke_client(self, name: str, reason: str = "unspecified") -> builtins.list[str]:
        """Revoke every unexpired client certificate of client ``name``; their serials.

        Renewed certificates count too: they stay valid until they expire.
        """
        check_reason(reason)
        identity = self.client_identity(name)
        now = self._now()
        where = (
            TABLE.c.kind == "client",
            TABLE.c.identity == identity,
            TABLE.c.revoked_at.is_(None),
            TABLE.c.not_after > now.astimezone(UTC),  # stored in UTC (naive on SQLite)
        )
        with self._engine.begin() as connection:
            serials = [
                row.serial for row in connection.execute(select(TABLE.c.serial).where(*where))
            ]
            if serials:
                connection.execute(
                    update(TABLE)
                    .where(TABLE.c.serial.in_(serials))
                    .values(revoked_at=now, revocation_reason=reason)
                )
        return serials

    def list(
        self, expiring_within: timedelta | None = None, include_revoked: bool = False
    ) -> builtins.list[CertificateInfo]:
        """Issued certificates, soonest expiry first (see :func:`inventory.select_listed`)."""
        with self._engine.connect() as connection:
            return select_listed(
                connection, self._now(), expiring_within, include_revoked=include_revoked
            )

    def due_for_renewal(self, within: timedelta) -> builtins.list[CertificateInfo]:
        """Certificates in use that expire within ``within`` (or already have)."""
        return self.list(expiring_within=within)

    def revoked_serials(self) -> frozenset[int]:
        """Serials of revoked certificates that have not expired yet."""
        return frozenset(entry.serial for entry in self._revocations())

    def crl_issuers(self) -> tuple[int, ...]:
        """Serials of the intermediates :meth:`crls` signs for: the current one first.

        A retired intermediate counts while a certificate issued before it was
        retired may still be valid; after that it is dropped, key and all.
        """
        return tuple(issuer.certificate.serial_number for issuer in self._crl_issuers())

    def crls(self) -> builtins.list[bytes]:
        """One PEM CRL per intermediate in use (current first), each valid :data:`CRL_VALIDITY`.

        Each lists the revoked, unexpired certificates its intermediate signed;
        the current one also lists any whose issuer is not found (a legacy CA's).
        """
        issuers = self._crl_issuers()
        revoked: builtins.list[builtins.list[Revocation]] = [[] for _ in issuers]
        for entry, pem in self._revoked_rows():
            found = 0
            if len(issuers) > 1:
                leaf = load_certificate_pem(pem.encode())
                found = next(
                    (n for n, ca in enumerate(issuers) if issued_by(leaf, ca.certificate)), 0
                )
            revoked[found].append(entry)
        now = self._now()
        return [
            certificate_revocation_list(
                issuer.certificate,
                self._authorities.open_key(issuer),
                entries,
                now,
                now + CRL_VALIDITY,
            )
            for issuer, entries in zip(issuers, revoked, strict=True)
        ]

    def crl_pem(self) -> bytes:
        """:meth:`crls` in one PEM file (what OpenSSL and nginx load as a CRL file)."""
        return b"".join(self.crls())

    # -- private ---------------------------------------------------------------

    def _client_signer(self, identity: str, lifetime: timedelta) -> _Signer:
        _check_lifetime(lifetime, MAX_CLIENT_LIFETIME, "client")

        def sign(ca: Certificate, key: PrivateKey) -> tuple[Certificate, PrivateKey]:
            return issue_client_certificate(ca, key, identity, lifetime, now=self._now())

        return sign

    def _server_signer(self, hosts: Sequence[str], lifetime: timedelta) -> _Signer:
        _check_lifetime(lifetime, MAX_SERVER_LIFETIME, "server")

        def sign(ca: Certificate, key: PrivateKey) -> tuple[Certificate, PrivateKey]:
            return issue_server_certificate(ca, key, hosts, lifetime, now=self._now())

        return sign

    def _as2_signer(self, name: str, lifetime: timedelta) -> _Signer:
        _check_lifetime(lifetime, MAX_AS2_LIFETIME, "AS2")

        def sign(ca: Certificate, key: PrivateKey) -> tuple[Certificate, EndEntityKey]:
            return issue_as2_certificate(ca, key, name, lifetime, now=self._now())

        return sign

    def _issue(  # noqa: PLR0917  (private; the three callers above name each fact)
        self,
        kind: Kind,
        name: str,
        identity: str | None,
        hosts: Sequence[str],
        ephemeral: bool,
        sign: _Signer,
        replaces: str | None = None,
    ) -> Issued:
        """Sign, then record the certificate (and the renewal) in one transaction."""
        _, issuing = self._authorities.ensure()
        certificate, key = sign(issuing.certificate, self._authorities.open_key(issuing))
        serial = serial_hex(certificate.serial_number)
        pem = certificate_pem(certificate)
        with self._engine.begin() as connection:
            connection.execute(
                TABLE.insert().values(
                    serial=serial,
                    kind=kind,
                    name=name,
                    identity=identity,
                    hosts=" ".join(hosts) or None,
                    not_before=certificate.not_valid_before_utc,
                    not_after=certificate.not_valid_after_utc,
                    certificate_pem=pem.decode(),
                    ephemeral=ephemeral,
                )
            )
            if replaces is not None:
                done = connection.execute(
                    update(TABLE)
                    .where(
                        TABLE.c.serial == replaces,
                        TABLE.c.replaced_by.is_(None),
                        TABLE.c.revoked_at.is_(None),
                    )
                    .values(replaced_by=serial)
                )
                if done.rowcount != 1:  # renewed or revoked meanwhile: record nothing
                    raise InvalidRequestError(
                        f"certificate {replaces} was renewed or revoked meanwhile"
                    )
        chain = pem + certificate_pem(issuing.certificate)
        return Issued(serial, chain, private_key_pem(key), certificate.not_valid_after_utc)

    def _revocations(self) -> builtins.list[Revocation]:
        return [entry for entry, _ in self._revoked_rows()]

    def _revoked_rows(self) -> builtins.list[tuple[Revocation, str]]:
        """Revoked, unexpired certificates: the CRL entry and the certificate (PEM)."""
        query = select(
            TABLE.c.serial, TABLE.c.revoked_at, TABLE.c.revocation_reason, TABLE.c.certificate_pem
        ).where(TABLE.c.revoked_at.is_not(None), TABLE.c.not_after > self._now())
        with self._engine.connect() as connection:
            rows = connection.execute(query.order_by(TABLE.c.serial)).all()
        return [
            (
                Revocation(int(row.serial, 16), row.revoked_at, row.revocation_reason),
                row.certificate_pem,
            )
            for row in rows
        ]

    def _crl_issuers(self) -> builtins.list[Authority]:
        """The current intermediate and the retired ones still needed; drops the others."""
        current, *retired = self._authorities.issuing()
        now = self._now()
        kept = [current]
        for issuer in retired:
            if issuer.certificate.not_valid_after_utc > now and self._issued_before(issuer):
                kept.append(issuer)
            else:
                self._authorities.drop(issuer)
        return kept

    def _issued_before(self, retired: Authority) -> bool:
        """Whether a certificate issued before ``retired`` was retired is still unexpired.

        Certificates are backdated by :data:`BACKDATE`: any the retired CA signed
        starts no later than its retirement minus that (conservative across CAs).
        """
        query = select(TABLE.c.serial).where(
            TABLE.c.not_after > self._now().astimezone(UTC),  # stored in UTC (naive on SQLite)
            TABLE.c.not_before <= retired.created_at - BACKDATE,
        )
        with self._engine.connect() as connection:
            return connection.execute(query.limit(1)).first() is not None


_Signer = Callable[[Certificate, PrivateKey], tuple[Certificate, EndEntityKey]]


def _check_lifetime(lifetime: timedelta, maximum: timedelta, kind: str) -> None:
    if not MIN_LIFETIME <= lifetime <= maximum:
        raise InvalidRequestError(
            f"a {kind} certificate lives from 1 hour to {maximum.days} days, "
            f"not {_describe(lifetime)}"
        )


def _describe(value: timedelta) -> str:
    if value.days >= 1 and not value.seconds:
        return f"{value.days} days"
    return f"{value.total_seconds() / 3600:g} hours"


def _check_hosts(hosts: Sequence[str]) -> tuple[str, ...]:
    """Host names (lower-cased) and IP addresses, in order, each once; an error names a bad one."""
    if isinstance(hosts, str):
        hosts = [hosts]
    names = tuple(dict.fromkeys(host.strip().lower() for host in hosts))
    if not names:
        raise InvalidRequestError("a server certificate needs at least one host name")
    if len(names) > MAX_HOSTS:
        raise InvalidRequestError(f"at most {MAX_HOSTS} host names per certificate")
    for host in names:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not _HOST.fullmatch(host):
                raise InvalidRequestError(
                    f"{host!r} is neither a DNS host name nor an IP address "
                    "(wildcards are not issued)"
                ) from None
    return names
