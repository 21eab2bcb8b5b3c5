"""A partner's AS2 profile made usable: its certificate, trust anchor, revocation, our identity.

Files named ``file:PATH`` are read relative to the manifest's directory. The
partner's certificate and ours must be RSA of at least 2048 bits; our key
comes from the vault (``our_key: secret://...``) and must match our
certificate. ``our_certificate: pki:NAME`` is the AS2 certificate the
deployment's PKI issued, read with its key (and the certificates it renewed,
which still open messages encrypted to them) from the vault
(:mod:`interlock.files.as2_identity`). Problems are
:class:`~interlock.errors.ConfigError` naming the setting
(``partners.NAME.as2.certificate``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography import x509

from interlock.config.files import As2Partner, FilesSpec, PartnerSigner
from interlock.config.manifest import Integration, Manifest
from interlock.crypto.cms import CmsError, Identity, Peer, check_key_size
from interlock.crypto.cms import load_identity as cms_identity
from interlock.errors import ConfigError, InterlockError, NotFoundError, did_you_mean
from interlock.files.as2_identity import As2Identities, parse_bundle, pki_name, secret_name
from interlock.files.as2_revocation import Revocation, revocation_for
from interlock.files.names import suggest_file_flow

__all__ = [
    "As2Flow",
    "Resolve",
    "as2_flow",
    "load_identities",
    "load_identity",
    "load_peer",
    "signer_peer",
]

Resolve = Callable[[str], bytes]
"""A ``secret://`` reference to the secret's bytes (the vault's ``resolve(...).reveal()``)."""


@dataclass(frozen=True)
class As2Flow:
    """One AS2 integration: its manifest parts, the partner's side and ours."""

    name: str
    flow: Integration
    spec: FilesSpec
    partner_name: str
    partner: As2Partner
    peer: Peer  # signatures are verified with it (its CRL when OpenSSL checks one then)
    identity: Identity
    revocation: Revocation  # the OCSP side of the partner certificate's revocation check
    previous: tuple[Identity, ...] = ()  # renewed, unexpired: they still open envelopes
    # pki:NAME: reads our identities again (a renewal since this flow was made)
    reload: Callable[[], As2Identities] | None = field(default=None, compare=False, repr=False)

    def renewed(self) -> As2Flow | None:
        """This flow with our renewed certificate, or None when it was not renewed since.

        Only for ``our_certificate: pki:NAME``; a vault that cannot answer is None too
        (the caller keeps the certificate it has).
        """
        if self.reload is None:
            return None
        try:
            fresh = self.reload()
        except InterlockError:
            return None
        if fresh.current.certificate == self.identity.certificate:
            return None
        return replace(self, identity=fresh.current, previous=fresh.previous)


def _path(reference: str, base: Path | None) -> Path:
    path = Path(reference.removeprefix("file:"))
    return path if path.is_absolute() else (base or Path.cwd()) / path


def _anchor(ca: str, anchors: Mapping[str, Path], base: Path | None, where: str) -> Path | None:
    if ca == "system":
        return None
    if ca.startswith("file:"):
        return _path(ca, base)
    anchor = anchors.get(ca)
    if anchor is None:
        hint = did_you_mean(ca, anchors)
        raise ConfigError(f"{where}.ca: trust anchor {ca!r} is not known to this deployment{hint}")
    return anchor


def load_peer(
    certificate: str,
    ca: str,
    crl: str | None,
    *,
    anchors: Mapping[str, Path],
    base: Path | None,
    where: str,
) -> Peer:
    """The partner's certificate (PEM), anchor and CRL files; RSA >= 2048 or refused."""
    path = _path(certificate, base)
    try:
        loaded = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        raise ConfigError(
            f"{where}.certificate: {path} is not a readable PEM certificate"
        ) from None
    try:
        check_key_size(loaded, f"{where}.certificate")
    except CmsError as error:
        raise ConfigError(error.reason) from None
    crl_path = _path(crl, base) if crl is not None else None
    return Peer(loaded, path, _anchor(ca, anchors, base, where), crl_path)


def load_identities(
    partner: As2Partner, resolve: Resolve, base: Path | None, where: str
) -> As2Identities:
    """Our identity for ``partner``: the PKI's (``pki:NAME``) or a file and a vault key."""
    name = pki_name(partner.our_certificate)
    if name is None:
        return As2Identities(load_identity(partner, resolve, base, where), ())
    try:
        bundle = resolve(f"secret://{secret_name(name)}")
    except NotFoundError:
        raise ConfigError(
            f"{where}.our_certificate: no AS2 certificate {name!r} in the vault; issue it with "
            f"`interlock pki issue as2 {name}`"
        ) from None
    return parse_bundle(bundle, f"{where}.our_certificate")


def load_identity(partner: As2Partner, resolve: Resolve, base: Path | None, where: str) -> Identity:
    """Our certificate (file) and key (vault) for ``partner``; they must belong together."""
    path = _path(partner.our_certificate, base)
    if partner.our_key is None or pki_name(partner.our_certificate) is not None:
        return load_identities(partner, resolve, base, where).current
    try:
        return cms_identity(path.read_bytes(), resolve(partner.our_key), where)
    except OSError:
        raise ConfigError(f"{where}.our_certificate: {path} cannot be read") from None
    except ValueError as error:
        raise ConfigError(str(error)) from None


def as2_flow(
    manifest: Manifest,
    integration: str,
    *,
    resolve: Resolve,
    anchors: Mapping[str, Path],
    base: Path | None,
) -> As2Flow:
    """The AS2 integration ``integration`` ready to send or receive; ConfigError otherwise."""
    flow = manifest.integrations.get(integration)
    spec = flow.files if flow is not None else None
    if flow is None or spec is None or spec.transport != "as2":
        hint = suggest_file_flow(manifest, integration, "as2")
        raise ConfigError(f"integration {integration!r} is no AS2 file integration{hint}")
    partner = manifest.partners.get(spec.partner)
    if partner is None or partner.as2 is None:
        raise ConfigError(f"partner {spec.partner!r} has no as2: section")
    where = f"partners.{spec.partner}.as2"
    profile = partner.as2
    peer = load_peer(
        profile.certificate, profile.ca, profile.crl, anchors=anchors, base=base, where=where
    )
    peer, revocation = revocation_for(profile, peer, where)
    ours = load_identities(profile, resolve, base, where)
    reload = None
    if pki_name(profile.our_certificate) is not None:

        def reload() -> As2Identities:
            return load_identities(profile, resolve, base, where)

    return As2Flow(
        integration,
        flow,
        spec,
        spec.partner,
        profile,
        peer,
        ours.current,
        revocation,
        ours.previous,
        reload,
    )


def signer_peer(
    manifest: Manifest, spec: FilesSpec, *, anchors: Mapping[str, Path], base: Path | None
) -> tuple[Peer, Revocation]:
    """The certificate the partner signs files with (``signer:``, else its AS2 certificate),
    and the OCSP side of its revocation check, as that section declares."""
    partner = manifest.partners.get(spec.partner)
    source: PartnerSigner | As2Partner | None = None
    if partner is not None:
        source = partner.signer or partner.as2
    if source is None:
        raise ConfigError(
            f"partners.{spec.partner}: signature detached-cms needs a signer: certificate"
        )
    where = f"partners.{spec.partner}.{'signer' if partner and partner.signer else 'as2'}"
    peer = load_peer(source.certificate, source.ca, source.crl, anchors=anchors, base=base,
                     where=where)  # fmt: skip
    return revocation_for(source, peer, where)
