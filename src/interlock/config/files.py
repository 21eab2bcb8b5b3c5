"""The manifest's file-transfer sections: trading partners, and what a file integration moves.

``partners:`` (top level) names each trading partner once: where it is
(``location``, for the register), the reference of the signed partner
agreement (shown among the register's recipients), and how files move with it:

* ``sftp`` — the partner's SFTP server, its SSH host keys **pinned** here
  (OpenSSH public-key lines; an unknown or changed host key fails closed),
  Interlock's client key by reference (``secret://``), never a password;
* ``as2`` — the partner's AS2 (RFC 4130) profile: AS2 ids, endpoint, its
  certificate and trust anchor, the algorithms it needs (modern only) and how
  it wants MDNs;
* ``drop`` — an account on Interlock's own SFTP drop server for the partner:
  its public keys, chrooted, upload-only unless declared otherwise.

An integration of ``type: file_transfer`` or ``b2b_edi`` carries a ``files:``
section: the partner, the direction and transport, where and how often, and
how each file is validated in quarantine before anyone processes it
(docs/files.md).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, Field, StringConstraints, field_validator, model_validator

from interlock.config.units import ByteSize, Duration
from interlock.config.urls import check_https_url, credential_in_url
from interlock.config.vocabulary import (
    FILE_REF_PATTERN,
    SSH_KEY_PATTERN,
    Country,
    HttpsUrl,
    Name,
    SecretRef,
    Text,
    TrustAnchor,
    _Model,
    check_secret_reference,
    check_trust_anchor,
)

__all__ = [
    "As2Encryption",
    "As2Partner",
    "As2Signing",
    "DropAccount",
    "FileFormat",
    "FilesSpec",
    "NotifyWebhook",
    "Partner",
    "PartnerNotify",
    "PartnerSigner",
    "Revocation",
    "SftpPartner",
    "SshPublicKey",
]


def _no_credentials(url: str) -> str:
    found = credential_in_url(url)
    if found is not None:
        raise ValueError(f"URL must not carry credentials ({found})")
    return url


#: An OpenSSH public-key line: ``ssh-ed25519 AAAA...`` (a comment after it is allowed).
SshPublicKey = Annotated[str, StringConstraints(pattern=SSH_KEY_PATTERN, max_length=2000)]
FileFormat = Literal["csv", "xml", "json", "edi", "binary"]
_PATH = Annotated[str, StringConstraints(pattern=r"^/[^\x00\n]{0,500}$")]
_GLOB = Annotated[str, StringConstraints(pattern=r"^[^/\x00\n]{1,200}$")]
_AS2_ID = Annotated[str, StringConstraints(pattern=r"^[!-~]{1,128}$")]
# A partner's endpoint: https with a host, never a credential in it (its validator says why,
# without repeating the value: a pattern's error would).
_HTTPS_URL = Annotated[
    HttpsUrl,
    AfterValidator(
        lambda url: check_https_url(url, why="the partner's files and receipts travel over it")
    ),
]
_FILE_REF = Annotated[str, StringConstraints(pattern=rf"^{FILE_REF_PATTERN}$")]
# pki:NAME: an AS2 certificate of the deployment's PKI (a PKI name: 1-63 of a-z, 0-9, -).
_OUR_CERTIFICATE = Annotated[
    str, StringConstraints(pattern=rf"^({FILE_REF_PATTERN}|pki:[a-z][a-z0-9-]{{0,62}})$")
]
# RFC 6960 Appendix A: OCSP over HTTP; the answer is signed, TLS optional.
_OCSP_URL = Annotated[
    str,
    StringConstraints(pattern=r"^https?://[^\s]{1,2000}$"),
    AfterValidator(_no_credentials),
]
As2Signing = Literal[
    "rsa-pss-sha256",
    "rsa-pss-sha384",
    "rsa-pss-sha512",
    "rsa-pkcs1-sha256",
    "rsa-pkcs1-sha384",
    "rsa-pkcs1-sha512",
]
As2Encryption = Literal["aes256-gcm", "aes256-cbc", "aes128-gcm", "aes128-cbc"]
# Weak algorithms, by a fragment of their name (dashes and underscores ignored).
_WEAK: Final = {
    "3des": "3DES",
    "desede": "3DES",
    "tripledes": "3DES",
    "des": "DES",
    "rc2": "RC2",
    "rc4": "RC4",
    "sha1": "SHA-1",
    "md5": "MD5",
}


Revocation = Literal["auto", "crl", "ocsp", "either", "none"]


def _revocation_fits(revocation: Revocation, crl: str | None, ocsp: str | None) -> None:
    """The revocation method and what it needs declared (docs/files.md, "Revocation")."""
    if revocation in {"crl", "either"} and crl is None:
        raise ValueError(f"revocation: {revocation} needs crl (the partner CA's CRL)")
    if revocation == "crl" and ocsp is not None:
        raise ValueError("revocation: crl with an ocsp responder; say ocsp, either or auto")
    if revocation == "none" and (crl is not None or ocsp is not None):
        raise ValueError("revocation: none contradicts the crl or ocsp declared")


class SftpPartner(_Model):
    """The partner's SFTP server: host keys pinned, Interlock's key from the vault."""

    host: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.-]{1,253}$")] = Field(
        description="The server's DNS name or address.", examples=["sftp.partner.example"]
    )
    port: int = Field(default=22, ge=1, le=65535, description="The server's port.")
    user: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")] = Field(
        description="The user name Interlock logs in as.", examples=["interlock"]
    )
    host_keys: tuple[SshPublicKey, ...] = Field(
        min_length=1,
        max_length=8,
        description=(
            "The server's pinned host keys, OpenSSH lines (any one may answer); an "
            "unknown key fails closed."
        ),
    )
    key: SecretRef = Field(
        description=(
            "Interlock's private key for this partner (OpenSSH or PKCS#8 PEM), as a "
            "secret:// reference."
        )
    )

    @field_validator("key")
    @classmethod
    def _by_reference(cls, value: str) -> str:
        check_secret_reference(value)  # ValueError unless a secret:// reference
        return value


class As2Partner(_Model):
    """The partner's AS2 profile (RFC 4130): ids, endpoint, certificates, algorithms, MDNs.

    Modern algorithms only: a weak one (3DES, RC2, DES, SHA-1, MD5) is refused
    here, by name, with its location. ``key_transport: rsa-pkcs1`` is allowed
    for partners that cannot do RSA-OAEP and is flagged by ``interlock check``.
    Interlock's own key is a vault reference, never a file; its certificate
    (public) is a file — or both are the AS2 certificate the deployment's PKI
    issued (``our_certificate: pki:NAME``, no ``our_key``).
    """

    as2_id: _AS2_ID = Field(description="The partner's AS2 id.", examples=["PARTNER-AS2"])
    our_id: _AS2_ID = Field(
        description="Interlock's AS2 id towards this partner.", examples=["EXAMPLE-RETAIL"]
    )
    url: _HTTPS_URL = Field(
        description="The partner's AS2 endpoint (https://).",
        examples=["https://as2.partner.example/receive"],
    )
    certificate: _FILE_REF = Field(
        description="The partner's certificate (signing and encryption), file:PATH.",
        examples=["file:partners/partner.pem"],
    )
    ca: TrustAnchor = Field(
        default="system",
        description="What the partner's certificate (and its TLS endpoint's) must chain to.",
    )
    crl: _FILE_REF | None = Field(
        default=None,
        description=(
            "The partner CA's revocation list (file:PATH, PEM or DER); a missing or "
            "stale list fails closed."
        ),
        examples=["file:partners/partner-ca.crl"],
    )
    ocsp: _OCSP_URL | None = Field(
        default=None,
        description=(
            "The partner CA's OCSP responder (http:// or https://); without it, the one "
            "the partner's certificate names (Authority Information Access), if any."
        ),
        examples=["http://ocsp.partner.example"],
    )
    revocation: Revocation = Field(
        default="auto",
        description=(
            "How the partner's certificate is checked for revocation: crl, ocsp, either "
            "(OCSP, the CRL when the responder cannot answer), none, or auto (every "
            "method declared or named by the certificate must answer). A declared "
            "method that cannot answer fails closed."
        ),
    )
    signing: As2Signing = Field(
        default="rsa-pss-sha256", description="The signature algorithm (modern only)."
    )
    encryption: As2Encryption = Field(
        default="aes256-gcm", description="The content encryption algorithm (modern only)."
    )
    key_transport: Literal["rsa-oaep", "rsa-pkcs1"] = Field(
        default="rsa-oaep",
        description=(
            "rsa-oaep, or rsa-pkcs1 for partners that cannot do OAEP (flagged by interlock check)."
        ),
    )
    compress: Literal[False, True, "before-signing", "after-signing"] = Field(
        default=False,
        description=(
            "Compress what we send (RFC 5402, zlib): false; before-signing (or true: "
            "compress, then sign, as most AS2 software does) or after-signing (sign, then "
            "compress). Messages received compressed either way are opened whatever this "
            "says, their inflated size bounded by the integration's max_size."
        ),
    )
    mdn: Literal["sync", "async"] = Field(
        default="sync", description="How the partner returns its MDN (receipt): sync or async."
    )
    mdn_url: _HTTPS_URL | None = Field(
        default=None,
        description=(
            "mdn: async: where the partner posts its MDNs (the gateway's "
            "/v1/as2/INTEGRATION/mdn as the partner reaches it)."
        ),
        examples=["https://interlock.example.com/v1/as2/invoices/mdn"],
    )
    our_key: SecretRef | None = Field(
        default=None,
        description=(
            "Interlock's AS2 private key (PEM), as a secret:// reference (not with "
            "our_certificate: pki:NAME, whose key the vault holds)."
        ),
    )
    our_certificate: _OUR_CERTIFICATE = Field(
        description=(
            "Interlock's AS2 certificate for this partner: file:PATH, or pki:NAME for the "
            "one `interlock pki issue as2 NAME` issued (key sealed in the vault, renewed "
            "by `interlock pki renew`)."
        ),
        examples=["file:partners/our-as2.pem", "pki:example-as2"],
    )
    require_signed: bool = Field(
        default=True, description="Messages from the partner must be signed (fail closed)."
    )
    require_encrypted: bool = Field(
        default=True, description="Messages from the partner must be encrypted (fail closed)."
    )

    @property
    def compression(self) -> Literal["none", "before-signing", "after-signing"]:
        """How what we send is compressed: ``compress`` with true read as before-signing."""
        if self.compress is True:
            return "before-signing"
        return "none" if self.compress is False else self.compress

    @field_validator("ca", mode="before")
    @classmethod
    def _trust_anchor(cls, value: object) -> object:
        return check_trust_anchor(value)

    @field_validator("signing", "encryption", "key_transport", mode="before")
    @classmethod
    def _modern(cls, value: object) -> object:
        if isinstance(value, str):
            for weak, what in _WEAK.items():
                if weak in value.lower().replace("-", "").replace("_", ""):
                    raise ValueError(f"{value!r} is refused: {what} is a weak algorithm")
        return value

    @field_validator("our_key")
    @classmethod
    def _key_by_reference(cls, value: str | None) -> str | None:
        return check_secret_reference(value)

    @field_validator("compress", mode="before")
    @classmethod
    def _compression_named(cls, value: object) -> object:
        if not isinstance(value, bool) and value not in {"before-signing", "after-signing"}:
            raise ValueError("must be false, true, before-signing or after-signing")
        return value

    @model_validator(mode="after")
    def _usable(self) -> As2Partner:
        if self.mdn == "async" and self.mdn_url is None:
            raise ValueError("mdn: async needs mdn_url (where the partner posts its MDNs)")
        _revocation_fits(self.revocation, self.crl, self.ocsp)
        issued = self.our_certificate.startswith("pki:")
        if issued and self.our_key is not None:
            raise ValueError(
                "our_key: not with our_certificate: pki:NAME (the vault holds that key)"
            )
        if not issued and self.our_key is None:
            raise ValueError("our_key: required with our_certificate: file:PATH")
        return self


class PartnerSigner(_Model):
    """The certificate a partner signs files with (detached CMS, ``NAME.p7s``)."""

    certificate: _FILE_REF = Field(
        description="The signer's certificate, file:PATH.", examples=["file:partners/signer.pem"]
    )
    ca: TrustAnchor = Field(
        default="system", description="What the signer's certificate must chain to."
    )
    crl: _FILE_REF | None = Field(
        default=None,
        description=("The CA's revocation list, file:PATH; a missing or stale list fails closed."),
        examples=["file:partners/signer-ca.crl"],
    )
    ocsp: _OCSP_URL | None = Field(
        default=None,
        description=(
            "The CA's OCSP responder (http:// or https://); without it, the one the "
            "signer's certificate names, if any."
        ),
        examples=["http://ocsp.partner.example"],
    )
    revocation: Revocation = Field(
        default="auto",
        description="How the signer's certificate is checked for revocation, as for as2.",
    )

    @field_validator("ca", mode="before")
    @classmethod
    def _trust_anchor(cls, value: object) -> object:
        return check_trust_anchor(value)

    @model_validator(mode="after")
    def _revocation(self) -> PartnerSigner:
        _revocation_fits(self.revocation, self.crl, self.ocsp)
        return self


class DropAccount(_Model):
    """The partner's account on Interlock's SFTP drop server."""

    keys: tuple[SshPublicKey, ...] = Field(
        min_length=1, max_length=8, description="The partner's SSH public keys, OpenSSH lines."
    )
    upload_only: bool = Field(
        default=True,
        description=("The partner may upload and nothing else (no listing, reading or deleting)."),
    )


class NotifyWebhook(_Model):
    """A partner's HTTPS endpoint for rejection reports, each POST signed (RFC 9421)."""

    url: _HTTPS_URL = Field(
        description="Where each rejection report is POSTed (https://).",
        examples=["https://edi.partner.example/interlock/rejections"],
    )
    ca: TrustAnchor = Field(
        default="system",
        description="What the endpoint's TLS certificate must chain to.",
        examples=["system", "pki:partners"],
    )

    @field_validator("ca", mode="before")
    @classmethod
    def _trust_anchor(cls, value: object) -> object:
        return check_trust_anchor(value)


class PartnerNotify(_Model):
    """How the partner is told a file it sent was refused in quarantine (docs/files.md)."""

    drop_outbox: bool = Field(
        default=False,
        description=(
            "Write each rejection report (NAME.HASH.rejected.json) into the partner's "
            "read-only /rejected directory on Interlock's drop server (needs drop)."
        ),
        examples=[True],
    )
    sftp_path: _PATH | None = Field(
        default=None,
        description=(
            "Upload each rejection report into this directory of the partner's SFTP "
            "server, its host key pinned (needs sftp)."
        ),
        examples=["/inbound/rejections"],
    )
    webhook: NotifyWebhook | None = Field(
        default=None, description="POST each rejection report to the partner, signed (RFC 9421)."
    )
    attempts: int = Field(
        default=8,
        ge=1,
        le=50,
        description="How many times each way is tried before the report is marked failed.",
        examples=[8],
    )
    backoff: Duration = Field(
        default=timedelta(seconds=30),
        description="The wait before the first retry; it doubles for each further one.",
        examples=["30s"],
    )

    @model_validator(mode="after")
    def _some_way(self) -> PartnerNotify:
        if not self.drop_outbox and self.sftp_path is None and self.webhook is None:
            raise ValueError("notify needs at least one of drop_outbox, sftp_path or webhook")
        return self


class Partner(_Model):
    """A trading partner: where it is, the agreement, and how files move with it."""

    location: Country = Field(description="ISO 3166-1 country of the partner (for the register).")
    agreement: Text = Field(
        description="The signed partner agreement's reference (shown in the register).",
        examples=["EDI agreement 2026-04 (contract no. 4711)"],
    )
    contact: Text | None = Field(
        default=None, description="How to reach the partner.", examples=["edi@partner.example"]
    )
    sftp: SftpPartner | None = Field(default=None, description="The partner's SFTP server.")
    as2: As2Partner | None = Field(default=None, description="The partner's AS2 profile.")
    drop: DropAccount | None = Field(
        default=None, description="The partner's account on Interlock's SFTP drop server."
    )
    signer: PartnerSigner | None = Field(
        default=None,
        description=(
            "Signed files (files.signature: detached-cms): this certificate, else the AS2 one."
        ),
    )
    notify: PartnerNotify | None = Field(
        default=None,
        description=(
            "How the partner is told of files refused in quarantine (AS2 partners get a "
            "negative MDN whatever this says)."
        ),
    )

    @model_validator(mode="after")
    def _some_transport(self) -> Partner:
        if self.sftp is None and self.as2 is None and self.drop is None:
            raise ValueError("a partner needs at least one of sftp, as2 or drop")
        if self.notify is not None:
            if self.notify.drop_outbox and self.drop is None:
                raise ValueError("notify.drop_outbox needs a drop account")
            if self.notify.sftp_path is not None and self.sftp is None:
                raise ValueError("notify.sftp_path needs the partner's sftp server")
        return self


class FilesSpec(_Model):
    """What a file integration moves with its partner, and how files are checked first."""

    partner: Name = Field(description="The trading partner (a name under partners).")
    direction: Literal["inbound", "outbound"] = Field(
        description="inbound: files come from the partner; outbound: files go to it."
    )
    transport: Literal["sftp", "drop", "as2"] = Field(
        description=(
            "sftp: Interlock pulls or pushes on the partner's server; drop: the "
            "partner uploads to Interlock's drop server (inbound only); as2: AS2 (RFC"
            " 4130)."
        )
    )
    remote_path: _PATH | None = Field(
        default=None, description="sftp: the partner's directory.", examples=["/outbound/orders"]
    )
    pattern: _GLOB = Field(default="*", description="Which file names are moved (a glob).")
    schedule: Duration = Field(
        default=timedelta(hours=1), description="sftp: how often to pull or push."
    )
    format: FileFormat = Field(
        description="The files' format, which decides how they are validated."
    )
    max_size: ByteSize = Field(default=50 * 1024 * 1024, description="The largest file accepted.")
    schema_: dict[str, object] | None = Field(
        default=None,
        alias="schema",
        description="format json: the JSON Schema (2020-12) each file must satisfy.",
        examples=[{"type": "object", "required": ["invoice_id"]}],
    )
    xml_schema_file: Annotated[str, StringConstraints(max_length=500)] | None = Field(
        default=None,
        description=(
            "format xml: an XSD each file must satisfy, relative to the manifest's directory."
        ),
        examples=["schemas/invoice.xsd"],
    )
    csv_columns: tuple[Annotated[str, StringConstraints(min_length=1, max_length=200)], ...] = (
        Field(
            default=(),
            description="format csv: the header row each file must have.",
            examples=[["sku", "quantity", "price"]],
        )
    )
    encoding: Literal["utf-8", "latin-1"] = Field(
        default="utf-8", description="The files' text encoding."
    )
    checksum: Literal["none", "sha256-sidecar"] = Field(
        default="none",
        description=(
            "sha256-sidecar: a SHA-256 sidecar file (NAME.sha256) must accompany each file."
        ),
    )
    signature: Literal["none", "detached-cms"] = Field(
        default="none",
        description=(
            "detached-cms: a detached CMS signature (NAME.p7s) by the partner must "
            "accompany each file."
        ),
    )
    quarantine_retention: Duration = Field(
        default=timedelta(days=30), description="How long refused files stay in quarantine."
    )
    sidecar_wait: Duration = Field(
        default=timedelta(minutes=15),
        description=(
            "drop: how long an upload waits for its checksum or signature file (and such a "
            "file for its upload) before it is refused."
        ),
    )
    waiting_limit: ByteSize = Field(
        default=1024 * 1024 * 1024,
        description=(
            "drop: the most bytes that may wait for their sidecars at once; an upload "
            "beyond it is refused (and audited), so a partner cannot fill the disk with "
            "files whose sidecars never come."
        ),
    )

    model_config = _Model.model_config | {"populate_by_name": True}

    @model_validator(mode="after")
    def _transport_fits(self) -> FilesSpec:
        if self.transport == "sftp" and self.remote_path is None:
            raise ValueError("transport sftp needs remote_path (the partner's directory)")
        if self.transport == "drop" and self.direction != "inbound":
            raise ValueError("the drop server receives files: transport drop is inbound only")
        if self.schema_ is not None and self.format != "json":
            raise ValueError("schema (JSON Schema) applies to format json")
        if self.csv_columns and self.format != "csv":
            raise ValueError("csv_columns applies to format csv")
        if self.xml_schema_file is not None and self.format != "xml":
            raise ValueError("xml_schema_file applies to format xml")
        return self
