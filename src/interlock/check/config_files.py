"""The checklist for a file-transfer or B2B integration, from its ``files:`` section and partner.

Files move over SFTP (the partner's host keys pinned in the manifest,
Interlock's client key in the vault) or to Interlock's drop server (the
partner's keys only, its own directory, upload-only by default), and every
received file is checked in quarantine before it moves on
(:mod:`interlock.files`). AS2 (RFC 4130) is carried by Interlock too: its
items are answered from the partner's ``as2:`` profile — signatures and
encryption required both ways, signed MDNs with the MIC checked, the
partner's certificate pinned and chained to its anchor. What the profile
weakens is not a pass: RSA PKCS#1 v1.5 key transport, unsigned or
unencrypted messages allowed, or no CRL to check revocation against get
``needs_evidence``, with the setting to change or the reason to waive.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.x509.oid import PublicKeyAlgorithmOID

from interlock.check.config_context import Context
from interlock.check.results import Finding, Status
from interlock.config.files import As2Partner, FilesSpec, Partner
from interlock.config.units import format_duration

__all__ = ["FILES_CHECKS", "files_type_findings"]

_NO_PARTNER: Final = "the partner is not declared"
MIN_RSA_BITS: Final = 2048


def _spec(context: Context) -> FilesSpec:
    spec = context.flow.files
    if spec is None:
        raise ValueError(f"{context.name} is not a file integration")
    return spec


def _partner(context: Context) -> Partner | None:
    return context.manifest.partners.get(_spec(context).partner)


def _as2(context: Context) -> As2Partner | None:
    partner = _partner(context)
    return partner.as2 if partner is not None else None


def _transport(context: Context) -> tuple[Status, list[str]]:
    """``(status, evidence)`` of the transport: SFTP, the drop server, or AS2 by its profile."""
    spec, partner = _spec(context), _partner(context)
    if partner is None:
        return "needs_evidence", [f"transport: {spec.transport}", _NO_PARTNER]
    if spec.transport == "as2":
        profile = partner.as2
        if profile is None:
            return "needs_evidence", ["transport: as2", "the partner has no as2: profile"]
        weak = _as2_weaknesses(profile)
        evidence = [
            f"as2 {profile.our_id} <-> {profile.as2_id} at {profile.url}",
            f"signing {profile.signing}, encryption {profile.encryption} "
            f"with {profile.key_transport}, {profile.mdn} signed MDNs with the MIC checked",
            f"our key {profile.our_key or 'sealed in the vault with ' + profile.our_certificate}",
            *_compression(profile),
            *weak,
        ]
        return ("needs_evidence" if weak else "pass"), evidence
    if spec.transport == "drop":
        drop = partner.drop
        keys = len(drop.keys) if drop is not None else 0
        mode = "upload-only" if drop is not None and drop.upload_only else "read and write"
        return "pass", [f"drop server: {keys} partner key(s), own directory, {mode}"]
    sftp = partner.sftp
    pinned = len(sftp.host_keys) if sftp is not None else 0
    key = sftp.key if sftp is not None else "?"
    return "pass", [f"sftp {sftp.host if sftp else '?'}: {pinned} pinned host key(s), key {key}"]


def _compression(profile: As2Partner) -> list[str]:
    if profile.compression == "none":
        return []
    return [
        f"compression {profile.compression} (RFC 5402, zlib): the encrypted size follows "
        "how repetitive the content is"
    ]


def _as2_weaknesses(profile: As2Partner) -> list[str]:
    """What the AS2 profile gives up, one line each (empty: nothing)."""
    weak = []
    if profile.key_transport == "rsa-pkcs1":
        weak.append("key_transport rsa-pkcs1: RSA PKCS#1 v1.5, not RSA-OAEP (flagged)")
    if not profile.require_signed:
        weak.append("require_signed: false — unsigned messages are accepted")
    if not profile.require_encrypted:
        weak.append("require_encrypted: false — unencrypted messages are accepted")
    return weak


def _certificates(context: Context) -> tuple[Status, str, list[str]]:
    """AS2: the partner's certificate pinned and chained, revocation by its CRL or OCSP."""
    profile = _as2(context)
    if profile is None:
        return "needs_evidence", _NO_PARTNER, []
    evidence = [f"certificate {profile.certificate}", f"trust anchor {profile.ca}"]
    for reference, where in (
        (profile.certificate, "the partner's"),
        (profile.our_certificate, "our"),
    ):
        facts, problem = _certificate_facts(context, reference)
        evidence.append(f"{where}: {facts}")
        if problem is not None:
            return "fail", f"{where} AS2 certificate {problem}", evidence
    methods = _revocation_methods(profile)
    if not methods:
        reason = (
            "the partner's certificate is pinned and checked against its anchor and validity "
            "dates, but neither a CRL nor an OCSP responder is declared (or revocation: none): "
            "revocation is not checked"
        )
        return "needs_evidence", reason, [*evidence, f"revocation: {profile.revocation}"]
    joined = (" or " if profile.revocation == "either" else " and ").join(methods)
    reason = (
        "the partner's certificate is pinned, chained to its anchor, inside its validity dates "
        f"and not revoked ({joined}) — for every message and MDN"
    )
    return "pass", reason, [*evidence, f"revocation: {profile.revocation}", *methods]


def _revocation_methods(profile: As2Partner) -> list[str]:
    """How the partner's certificate is checked for revocation, as the profile declares it."""
    if profile.revocation == "none":
        return []
    methods = [f"crl {profile.crl}"] if profile.crl is not None else []
    if profile.ocsp is not None or profile.revocation in {"ocsp", "either"}:
        methods.append(f"ocsp {profile.ocsp or '(named by the certificate)'}")
    return methods


def _certificate_facts(context: Context, reference: str) -> tuple[str, str | None]:
    """What a ``file:`` certificate is (key, expiry), and why it cannot be used (None: it can)."""
    if reference.startswith("pki:"):  # in the vault; `pki list --expiring` watches its expiry
        return f"{reference}, RSA 3072 issued by this deployment's PKI (pki list)", None
    path = Path(reference.removeprefix("file:"))
    if not path.is_absolute():
        path = Path(context.at().file).parent / path
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return f"{reference} not readable here", None
    bits = getattr(certificate.public_key(), "key_size", 0)
    rsa = certificate.public_key_algorithm_oid == PublicKeyAlgorithmOID.RSAES_PKCS1_v1_5
    until = certificate.not_valid_after_utc
    facts = f"{'RSA' if rsa else 'not RSA'} {bits} bits, valid until {until:%Y-%m-%d}"
    if not rsa or bits < MIN_RSA_BITS:
        return facts, f"is not RSA of at least {MIN_RSA_BITS} bits"
    if until < context.now:
        return facts, "has expired"
    return facts, None


def _transport_item(item: str, passed: str, as2: str) -> Callable[[Context], Finding]:
    def check(context: Context) -> Finding:
        status, evidence = _transport(context)
        if item == "certificates_validated" and _spec(context).transport == "as2":
            status, reason, evidence = _certificates(context)
        else:
            reason = as2 if _spec(context).transport == "as2" else passed
            if status != "pass":
                reason = f"{reason}; but: {'; '.join(evidence[3:] or evidence)}"
        return context.finding(
            item,
            status,
            reason,
            evidence,
            context.locate(("partners", _spec(context).partner)),
            None
            if status == "pass"
            else "tighten the partner's as2: profile (rsa-oaep, require_signed, "
            "require_encrypted, crl) or confirm with the partner and waive with the reason",
        )

    return check


def _minimisation(context: Context) -> Finding:
    spec = _spec(context)
    return context.finding(
        "minimisation",
        "needs_evidence",
        "files are checked but passed on whole: Interlock does not cut columns or fields of a file",
        (f"format: {spec.format}", f"personal data: {'yes' if context.flow.personal else 'no'}"),
        context.at("files"),
        "confirm the partner sends only the columns the purpose needs (csv_columns lists the "
        "required header), or waive with the reason",
    )


def _input_validation(context: Context) -> Finding:
    spec = _spec(context)
    evidence = [f"format: {spec.format}", f"max_size: {spec.max_size} bytes"]
    checks = {
        "csv": f"CSV header {', '.join(spec.csv_columns)}" if spec.csv_columns else "CSV parsing",
        "xml": f"XML (no DTD or entities){' and XSD' if spec.xml_schema_file else ''}",
        "json": f"JSON{' and its JSON Schema' if spec.schema_ is not None else ''}",
        "edi": "EDI: type and encoding only",
        "binary": "binary: size only",
    }
    evidence.append(checks[spec.format])
    if spec.checksum != "none":
        evidence.append(f"checksum: {spec.checksum}")
    return context.finding(
        "input_validation",
        "pass",
        "every received file waits in quarantine until its size, type by content, encoding "
        "and format are checked; refused files never reach processing",
        evidence,
        context.at("files", "format"),
    )


def _rate_limiting(context: Context) -> Finding:
    spec = _spec(context)
    return context.finding(
        "rate_limiting",
        "needs_evidence",
        "file sizes are capped, but Interlock does not limit how many files a partner sends",
        (f"max_size: {spec.max_size} bytes", f"schedule: {format_duration(spec.schedule)}"),
        context.at("files"),
        "confirm the partner's volume is bounded (agreement) or waive with the reason",
    )


def _sanitised_errors(context: Context) -> Finding:
    return context.finding(
        "sanitised_errors",
        "pass",
        "a refused file keeps its reasons next to it in quarantine; the reasons never quote "
        "the file's content",
        ("refused/NAME.reasons.json",),
        context.at("files"),
    )


def _audit_trail(context: Context) -> Finding:
    return context.finding(
        "audit_trail",
        "pass",
        "every received file is recorded on the tamper-evident audit log with its SHA-256, "
        "size, record count and outcome",
        ("action: files.receive",),
        context.at(),
    )


FILES_CHECKS: Final[dict[str, Callable[[Context], Finding]]] = {
    "authentication": _transport_item(
        "authentication",
        "both ends authenticate by key: the partner's host key is pinned (or the partner's "
        "keys are the only way into the drop server), never a password",
        "every AS2 message and MDN is signed: the partner's by its pinned certificate, "
        "Interlock's by its key from the vault; unknown AS2 ids are refused",
    ),
    "least_privilege": _transport_item(
        "least_privilege",
        "the partner reaches only its own directory (the drop server), or Interlock's account "
        "on the partner's server reads one directory",
        "the partner's AS2 messages reach only its integration's quarantine",
    ),
    "secrets_manager": _transport_item(
        "secrets_manager",
        "Interlock's SSH key for the partner is a vault reference",
        "Interlock's AS2 signing and decryption key is a vault reference",
    ),
    "tls_required": _transport_item(
        "tls_required",
        "files travel over SSH (SFTP): encrypted and integrity-protected",
        "AS2 travels over HTTPS (TLS verified against the partner's anchor) and every "
        "message is encrypted to the recipient's certificate (S/MIME) and signed",
    ),
    "certificates_validated": _transport_item(
        "certificates_validated",
        "the partner's SSH host key is pinned in the manifest: an unknown or changed key is "
        "refused",
        "",
    ),
    "minimisation": _minimisation,
    "input_validation": _input_validation,
    "rate_limiting": _rate_limiting,
    "sanitised_errors": _sanitised_errors,
    "audit_trail": _audit_trail,
}
"""The items a file integration answers from its files section and partner."""


def files_type_findings(context: Context) -> list[Finding]:
    """The ``type.file_transfer.*`` or ``type.b2b_edi.*`` mitigations, with evidence."""
    spec, kind = _spec(context), context.flow.type
    status, evidence = _transport(context)
    reasons = {
        "sftp": "SFTP with pinned host keys and key authentication, never plain FTP",
        "drop": "the partner uploads over SFTP with its own keys to Interlock's drop server",
        "as2": "AS2 over HTTPS, signed and encrypted S/MIME with modern algorithms, signed MDNs "
        "with the MIC checked",
    }
    secure = context.finding(
        f"type.{kind}.secure_transport",
        status,
        reasons[spec.transport]
        if status == "pass"
        else f"{reasons[spec.transport]}; but: {'; '.join(evidence[3:] or evidence)}",
        evidence,
        context.locate(("partners", spec.partner)),
    )
    if kind == "file_transfer":
        validated = _input_validation(context)
        drop = context.finding(
            "type.file_transfer.drop_access",
            "pass",
            "files land in the integration's own quarantine (0700 directories, 0600 files) and "
            f"refused ones are purged after {format_duration(spec.quarantine_retention)}",
            (f"quarantine_retention: {format_duration(spec.quarantine_retention)}",),
            context.at("files"),
        )
        return [
            secure,
            context.finding(
                "type.file_transfer.validate_before_processing",
                "pass",
                validated.reason,
                validated.evidence,
                validated.location,
            ),
            drop,
        ]
    partner = _partner(context)
    agreement = context.finding(
        "type.b2b_edi.partner_agreement",
        "pass" if partner is not None else "needs_evidence",
        f"partner agreement {partner.agreement!r} is declared (the register shows it)"
        if partner is not None
        else "the partner is not declared",
        (f"partner: {spec.partner}",),
        context.locate(("partners", spec.partner, "agreement")),
    )
    cert_status: Status
    if spec.transport == "as2":
        cert_status, cert_reason, cert_evidence = _certificates(context)
    else:
        cert_status = "needs_evidence"
        cert_reason = (
            f"partner certificates are checked for AS2; over {spec.transport} the partner is "
            "known by its SSH keys instead"
        )
        cert_evidence = evidence
    certificates = context.finding(
        "type.b2b_edi.partner_certificates",
        cert_status,
        cert_reason,
        cert_evidence,
        context.locate(("partners", spec.partner)),
        None
        if cert_status == "pass"
        else "declare the partner CA's CRL (crl:) or OCSP responder (ocsp:) or confirm "
        "revocation by hand and waive with the reason",
    )
    return [secure, certificates, agreement]
