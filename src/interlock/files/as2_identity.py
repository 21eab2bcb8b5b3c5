"""Interlock's own AS2 certificate, issued by the deployment's PKI, its key sealed in the vault.

``interlock pki issue as2 NAME`` asks the PKI (:meth:`Pki.issue_as2`: RSA
3072, digitalSignature and keyEncipherment, emailProtection) and stores the
certificate chain and the key as one PEM bundle, the vault secret
``interlock/as2/NAME`` — sealed with the keyring like every secret; the key is
never written to a file. A partner profile names it with ``our_certificate:
pki:NAME`` (and no ``our_key``).

Renewal is that of every PKI certificate, ``interlock pki renew --within``
(cron): a new certificate and key become the secret's new current value, and
the previous certificate with its key stays in the bundle until it expires, so
messages a partner still encrypts to the old certificate are opened — the
partner needs the new certificate (``interlock files as2-cert NAME --out``)
before the old one expires, since messages are signed with the new one at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from interlock.crypto.cms import Identity, load_identity
from interlock.crypto.pkix import (
    Certificate,
    certificate_pem,
    is_ca,
    load_certificates_pem,
    private_key_pem,
)
from interlock.errors import ConfigError, InvalidRequestError
from interlock.pki.authority import Issued

__all__ = [
    "PKI_PREFIX",
    "As2Identities",
    "bundle_after_renewal",
    "bundle_of",
    "check_name",
    "parse_bundle",
    "pki_name",
    "secret_name",
]

PKI_PREFIX: Final = "pki:"
_KEY_BLOCK: Final = re.compile(
    rb"-----BEGIN PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]+-----END PRIVATE KEY-----\r?\n?"
)


def pki_name(reference: str) -> str | None:
    """``NAME`` of ``our_certificate: pki:NAME``, or None for a ``file:`` certificate."""
    return reference.removeprefix(PKI_PREFIX) if reference.startswith(PKI_PREFIX) else None


def secret_name(name: str) -> str:
    """The vault secret holding AS2 certificate ``name`` and its key."""
    return f"interlock/as2/{name}"


@dataclass(frozen=True)
class As2Identities:
    """The current certificate with its key (signs, is encrypted to), and the ones it renewed.

    ``chain`` is the current certificate's issuing intermediate (and what else
    the PKI put after the leaf); ``previous`` still open what partners encrypt
    to them until they expire.
    """

    current: Identity
    chain: tuple[Certificate, ...]
    previous: tuple[Identity, ...] = ()

    def certificate_pem(self) -> bytes:
        """The current certificate, PEM: what the partner installs."""
        return certificate_pem(self.current.certificate)

    def chain_pem(self) -> bytes:
        """The certificates the current one chains to (the PKI's intermediate), PEM."""
        return b"".join(certificate_pem(c) for c in self.chain)


def parse_bundle(bundle: bytes, where: str) -> As2Identities:
    """Read a bundle: the current leaf, its chain, its key, then earlier leaves with their keys."""
    try:
        certificates = load_certificates_pem(bundle)
    except ValueError:
        certificates = []
    keys = [match.group(0) for match in _KEY_BLOCK.finditer(bundle)]
    if not certificates or not keys:
        raise ConfigError(f"{where}: the vault's AS2 bundle holds no certificate and key")
    current = load_identity(certificate_pem(certificates[0]), keys[0], where)
    leaves = [c for c in certificates[1:] if not is_ca(c)]
    chain = tuple(c for c in certificates[1:] if is_ca(c))
    previous: list[Identity] = []
    for leaf, key in zip(leaves, keys[1:], strict=False):
        previous.append(load_identity(certificate_pem(leaf), key, where))
    return As2Identities(current, chain, tuple(previous))


def bundle_of(issued: Issued) -> bytes:
    """A new bundle: the issued chain (leaf, intermediate) and its key."""
    return issued.certificate_pem + issued.private_key_pem


def bundle_after_renewal(old: bytes, issued: Issued, now: datetime, where: str) -> bytes:
    """The renewed bundle: the new certificate current, the old ones kept while unexpired."""
    before = parse_bundle(old, where)
    kept = [
        identity
        for identity in (before.current, *before.previous)
        if identity.certificate.not_valid_after_utc > now
    ]
    tail = b"".join(certificate_pem(i.certificate) + private_key_pem(i.key) for i in kept)
    return bundle_of(issued) + tail


def check_name(name: str) -> str:
    """``name`` if it can name an AS2 certificate (as the PKI requires), else refused."""
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,62}", name):
        raise InvalidRequestError(
            f"{name!r} is not an AS2 certificate name: 1-63 lower-case letters, digits and "
            "'-', starting with a letter"
        )
    return name
