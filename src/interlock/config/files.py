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

from pydantic import Field, StringConstraints, field_validator, model_validator

from interlock.config.units import ByteSize, Duration
from interlock.config.vocabulary import (
    SSH_KEY_PATTERN,
    Country,
    Name,
    Text,
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
    "Partner",
    "PartnerSigner",
    "SftpPartner",
    "SshPublicKey",
]

#: An OpenSSH public-key line: ``ssh-ed25519 AAAA...`` (a comment after it is allowed).
SshPublicKey = Annotated[str, StringConstraints(pattern=SSH_KEY_PATTERN, max_length=2000)]
FileFormat = Literal["csv", "xml", "json", "edi", "binary"]
_PATH = Annotated[str, StringConstraints(pattern=r"^/[^\x00\n]{0,500}$")]
_GLOB = Annotated[str, StringConstraints(pattern=r"^[^/\x00\n]{1,200}$")]
_AS2_ID = Annotated[str, StringConstraints(pattern=r"^[!-~]{1,128}$")]
_HTTPS_URL = Annotated[str, StringConstraints(pattern=r"^https://[^\s]{1,2000}$")]
_FILE_REF = Annotated[str, StringConstraints(pattern=r"^file:\S+$")]
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


class SftpPartner(_Model):
    """The partner's SFTP server: host keys pinned, Interlock's key from the vault."""

    host: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.-]{1,253}$")]
    port: int = Field(default=22, ge=1, le=65535)
    user: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
    # The server's host keys (any one may answer); never "accept whatever comes".
    host_keys: tuple[SshPublicKey, ...] = Field(min_length=1, max_length=8)
    # Interlock's private key for this partner, by reference (OpenSSH or PKCS#8 PEM).
    key: str

    @field_validator("key")
    @classmethod
    def _by_reference(cls, value: str) -> str:
        checked = check_secret_reference(value)
        assert checked is not None  # noqa: S101  (a str in, a str out)
        return checked


class As2Partner(_Model):
    """The partner's AS2 profile (RFC 4130): ids, endpoint, certificates, algorithms, MDNs.

    Modern algorithms only: a weak one (3DES, RC2, DES, SHA-1, MD5) is refused
    here, by name, with its location. ``key_transport: rsa-pkcs1`` is allowed
    for partners that cannot do RSA-OAEP and is flagged by ``interlock check``.
    Interlock's own key is a vault reference, never a file; its certificate
    (public) is a file.
    """

    as2_id: _AS2_ID
    our_id: _AS2_ID
    url: _HTTPS_URL
    # The partner's certificate (signing and encryption), a file Interlock reads.
    certificate: _FILE_REF
    # What the partner's certificate must chain to (and its TLS endpoint's).
    ca: str = "system"
    # The partner CA's revocation list (PEM or DER); when given, every signature is
    # checked against it (openssl -crl_check) and a missing or stale list fails closed.
    crl: _FILE_REF | None = None
    signing: As2Signing = "rsa-pss-sha256"
    encryption: As2Encryption = "aes256-gcm"
    key_transport: Literal["rsa-oaep", "rsa-pkcs1"] = "rsa-oaep"
    compress: bool = False
    mdn: Literal["sync", "async"] = "sync"
    # async: where the partner posts its MDNs to us (Receipt-Delivery-Option), the
    # gateway's /v1/as2/INTEGRATION/mdn as the partner reaches it.
    mdn_url: _HTTPS_URL | None = None
    # Interlock's AS2 key (PEM, in the vault) and its certificate for this partner.
    our_key: str
    our_certificate: _FILE_REF
    # Messages from the partner must be signed (and encrypted) — the default, fail closed.
    require_signed: bool = True
    require_encrypted: bool = True

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
    def _key_by_reference(cls, value: str) -> str:
        checked = check_secret_reference(value)
        assert checked is not None  # noqa: S101  (a str in, a str out)
        return checked

    @model_validator(mode="after")
    def _usable(self) -> As2Partner:
        if self.compress:
            raise ValueError("compress: AS2 compression (RFC 5402) is not supported; set false")
        if self.mdn == "async" and self.mdn_url is None:
            raise ValueError("mdn: async needs mdn_url (where the partner posts its MDNs)")
        return self


class PartnerSigner(_Model):
    """The certificate a partner signs files with (detached CMS, ``NAME.p7s``)."""

    certificate: _FILE_REF
    ca: str = "system"
    crl: _FILE_REF | None = None

    @field_validator("ca", mode="before")
    @classmethod
    def _trust_anchor(cls, value: object) -> object:
        return check_trust_anchor(value)


class DropAccount(_Model):
    """The partner's account on Interlock's SFTP drop server."""

    keys: tuple[SshPublicKey, ...] = Field(min_length=1, max_length=8)
    # True: the partner may upload and nothing else (no listing, reading or deleting).
    upload_only: bool = True


class Partner(_Model):
    """A trading partner: where it is, the agreement, and how files move with it."""

    location: Country
    agreement: Text  # the signed partner agreement's reference (shown in the register)
    contact: Text | None = None
    sftp: SftpPartner | None = None
    as2: As2Partner | None = None
    drop: DropAccount | None = None
    # Signed files (files.signature: detached-cms): this certificate, else the AS2 one.
    signer: PartnerSigner | None = None

    @model_validator(mode="after")
    def _some_transport(self) -> Partner:
        if self.sftp is None and self.as2 is None and self.drop is None:
            raise ValueError("a partner needs at least one of sftp, as2 or drop")
        return self


class FilesSpec(_Model):
    """What a file integration moves with its partner, and how files are checked first."""

    partner: Name
    direction: Literal["inbound", "outbound"]
    # sftp: Interlock pulls (inbound) or pushes (outbound) on the partner's server;
    # drop: the partner uploads to Interlock's drop server (inbound only);
    # as2: the partner sends to the gateway's AS2 endpoint (inbound) or Interlock sends.
    transport: Literal["sftp", "drop", "as2"]
    remote_path: _PATH | None = None  # sftp: the partner's directory
    pattern: _GLOB = "*"
    schedule: Duration = timedelta(hours=1)  # sftp: how often to pull or push
    format: FileFormat
    max_size: ByteSize = 50 * 1024 * 1024
    # csv/xml/json: the integration's schema checks each file (JSON Schema for json;
    # the existing XML and CSV policies of the validators for the others).
    schema_: dict[str, object] | None = Field(default=None, alias="schema")
    xml_schema_file: Annotated[str, StringConstraints(max_length=500)] | None = None
    csv_columns: tuple[Annotated[str, StringConstraints(min_length=1, max_length=200)], ...] = ()
    encoding: Literal["utf-8", "latin-1"] = "utf-8"
    # A SHA-256 sidecar file (NAME.sha256) or a detached CMS signature (NAME.p7s) by the
    # partner must accompany each file.
    checksum: Literal["none", "sha256-sidecar"] = "none"
    signature: Literal["none", "detached-cms"] = "none"
    quarantine_retention: Duration = timedelta(days=30)

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
