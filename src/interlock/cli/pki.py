"""``interlock pki``: the deployment's CAs, and client, server and AS2 certificates.

Private keys leave only as new PEM files, mode 0600, never overwriting
anything; certificates go next to them as ``NAME.pem`` (leaf, then the
intermediate). Interlock's own AS2 certificate is the exception: its key goes
into the vault, sealed, and never to a file (``interlock files as2-cert``
exports the certificate). ``list --expiring`` exits 1 when something is due, for monitoring;
``renew --within`` renews everything due, for cron.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.table import Table

from interlock.cli import as2_certificates, completion
from interlock.cli.context import settings
from interlock.cli.options import ManifestOption, duration_option
from interlock.cli.output import Col, JsonOption, iso, print_json, print_table, table, when
from interlock.cli.vault_session import open_vault_session
from interlock.config.loader import load_manifest
from interlock.crypto.keyfile import write_private_file
from interlock.crypto.pkix import load_certificate_pem
from interlock.errors import InvalidRequestError
from interlock.files.as2_identity import secret_name
from interlock.pki.authority import (
    DEFAULT_AS2_LIFETIME,
    DEFAULT_LIFETIME,
    CertificateInfo,
    Issued,
    Pki,
)
from interlock.pki.enrolment import issue_for_client
from interlock.pki.rfc5280 import REVOCATION_REASONS, check_reason
from interlock.store import open_deployment

__all__ = ["app"]

SECONDS_PER_DAY: Final = 86400

app = typer.Typer(
    help="Interlock's PKI: root and issuing CA, client and server certificates, CRL.",
    no_args_is_help=True,
)
issue_app = typer.Typer(help="Issue a client, server or AS2 certificate.", no_args_is_help=True)
app.add_typer(issue_app, name="issue")

OutDir = Annotated[
    Path,
    typer.Option("--out", help="Existing directory for NAME.key (0600) and NAME.pem (chain)."),
]
Lifetime = Annotated[
    str | None,
    typer.Option("--lifetime", help="e.g. 30d, 12h or P30D (default 30d; 1h to 90d for clients)."),
]


@contextmanager
def _pki() -> Iterator[Pki]:
    current = settings()
    deployment = open_deployment(current)
    try:
        yield Pki(
            deployment.engine, deployment.keyring, deployment.deployment_id, current.trust_domain
        )
    finally:
        deployment.close()


@app.command("init")
def init() -> None:
    """Create the root and the issuing CA if missing (``interlock init`` does it too)."""
    with _pki() as pki:
        pki.ensure()
        root, issuing = pki.root_certificate(), pki.chain_pem()
        typer.echo(f"root CA     {root.subject.rfc4514_string()} (path length 1)")
        typer.echo(f"            valid until {_when(root.not_valid_after_utc)}")
        typer.echo(f"issuing CA  {_subject_of(issuing)} (path length 0, signs certificates)")


@issue_app.command("client")
def issue_client(
    name: Annotated[
        str,
        typer.Argument(
            help="The client's name, as in the manifest.",
            autocompletion=completion.mtls_client_names,
        ),
    ],
    out: OutDir,
    lifetime: Lifetime = None,
    manifest: ManifestOption = None,
) -> None:
    """A client certificate: identity spiffe://TRUST-DOMAIN/client/NAME, clientAuth only.

    NAME must be a client of the manifest with mtls in its auth.
    """
    clients = load_manifest(manifest or settings().manifest)
    with _pki() as pki:
        _create_out(out)
        _refuse_existing(out, [name])
        wanted = duration_option(lifetime) or DEFAULT_LIFETIME
        issued = issue_for_client(pki, clients, name, wanted)
        typer.echo(f"issued client certificate {issued.serial} for {pki.client_identity(name)}")
        _write(out, name, issued)


@issue_app.command("server")
def issue_server(
    hosts: Annotated[list[str], typer.Argument(help="DNS names and IP addresses.")],
    out: OutDir,
    lifetime: Lifetime = None,
) -> None:
    """A server certificate for HOST... (serverAuth); files are named after the first host."""
    with _pki() as pki:
        _create_out(out)
        _refuse_existing(out, [hosts[0].strip().lower()])
        issued = pki.issue_server(hosts, duration_option(lifetime) or DEFAULT_LIFETIME)
        info = pki.get(issued.serial)
        typer.echo(f"issued server certificate {issued.serial} for {' '.join(info.hosts)}")
        _write(out, info.name, issued)


@issue_app.command("as2")
def issue_as2(
    name: Annotated[str, typer.Argument(help="The certificate's name (CN), e.g. example-as2.")],
    lifetime: Annotated[
        str | None, typer.Option("--lifetime", help="e.g. 365d (default; 1h to 397d).")
    ] = None,
) -> None:
    """Interlock's AS2 certificate: RSA 3072, S/MIME signing and encryption, key in the vault.

    Partner profiles name it ``our_certificate: pki:NAME``; give the partner
    ``interlock files as2-cert NAME --out FILE``.
    """
    with open_vault_session() as session:
        issued = as2_certificates.issue(
            session, name, duration_option(lifetime) or DEFAULT_AS2_LIFETIME
        )
    typer.echo(f"issued AS2 certificate {issued.serial} for CN={name}")
    typer.echo(f"  expires  {_when(issued.not_after)}")
    typer.echo(f"  key      sealed in the vault: secret://{secret_name(name)}")


@app.command("renew")
def renew(
    out: OutDir,
    serial: Annotated[str | None, typer.Argument(help="The certificate to renew.")] = None,
    within: Annotated[
        str | None,
        typer.Option("--within", help="Renew every certificate in use expiring within, e.g. 7d."),
    ] = None,
    lifetime: Annotated[
        str | None, typer.Option("--lifetime", help="Default: the old certificate's lifetime.")
    ] = None,
) -> None:
    """Renew SERIAL, or with --within everything due; old certificates stay valid until expiry."""
    if (serial is None) == (within is None):
        raise InvalidRequestError("give either a SERIAL or --within, not both or neither")
    wanted = duration_option(lifetime)
    with _pki() as pki:
        due = [pki.get(serial)] if serial is not None else pki.due_for_renewal(_window(within))
        if not due:
            typer.echo(f"no certificate in use expires within {within}")
            return
        _create_out(out)
        _refuse_existing(out, [info.name for info in due if info.kind != "as2"])
        for info in due:
            if info.kind == "as2":  # the key goes to the vault, never to a file
                _renew_as2(info, wanted)
                continue
            issued = pki.renew(info.serial, wanted)
            typer.echo(
                f"renewed {info.kind} {info.serial} ({info.name}, expiring "
                f"{_when(info.not_after)}) as {issued.serial}"
            )
            _write(out, info.name, issued)


def _renew_as2(info: CertificateInfo, lifetime: timedelta | None) -> None:
    with open_vault_session() as session:
        issued = as2_certificates.renew(session, as2_certificates.pki_of(session), info, lifetime)
    typer.echo(
        f"renewed as2 {info.serial} ({info.name}, expiring {_when(info.not_after)}) "
        f"as {issued.serial}"
    )
    typer.echo(f"  expires  {_when(issued.not_after)}")
    typer.echo(f"  key      sealed in the vault: secret://{secret_name(info.name)}")
    typer.echo(f"  give the partners `interlock files as2-cert {info.name} --out FILE`")


@app.command("revoke")
def revoke(
    serial: Annotated[str, typer.Argument(help="The certificate's serial (hexadecimal).")],
    reason: Annotated[
        str, typer.Option("--reason", help=f"RFC 5280 reason: {', '.join(REVOCATION_REASONS)}.")
    ] = "unspecified",
) -> None:
    """Revoke a certificate at once; it is listed in the CRL until it expires."""
    check_reason(reason)
    with _pki() as pki:
        before = pki.get(serial)
        if before.revoked_at is not None:
            typer.echo(
                f"certificate {before.serial} was already revoked "
                f"({before.revocation_reason}, {_when(before.revoked_at)})"
            )
            return
        pki.revoke(serial, reason)
        typer.echo(f"revoked {before.kind} certificate {before.serial} ({before.name}): {reason}")


@app.command("list")
def list_certificates(
    expiring: Annotated[
        str | None,
        typer.Option(
            "--expiring", help="Only certificates in use expiring within, e.g. 14d; exit 1 if any."
        ),
    ] = None,
    include_revoked: Annotated[
        bool, typer.Option("--revoked", help="Also show revoked certificates.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Issued certificates, soonest expiry first: serial, kind, name, expiry, days left, status."""
    window = _window(expiring) if expiring is not None else None
    with _pki() as pki:
        rows = pki.list(window, include_revoked=include_revoked)
        now = pki.now()
    if as_json:
        print_json({"certificates": [_as_json(info, now) for info in rows]})
    else:
        print_table(_table(rows, now, expiring))
    if window is not None and rows:
        typer.echo(f"{len(rows)} certificate(s) in use expire within {expiring}", err=True)
        raise typer.Exit(1)


@app.command("crl")
def crl(
    out: Annotated[Path, typer.Option("--out", help="Where to write the PEM CRL (replaced).")],
) -> None:
    """Write the current CRLs (one per intermediate in use, each valid one day)."""
    with _pki() as pki:
        lists = pki.crls()
        count = len(pki.revoked_serials())
    data = b"".join(lists)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InvalidRequestError(f"cannot write {out}: {exc.strerror}") from None
    typer.echo(
        f"wrote {out}: {len(lists)} list(s), {count} revoked certificate(s); "
        "they expire in 1 day: write them again well before"
    )


@app.command("export-root")
def export_root(
    out: Annotated[Path, typer.Option("--out", help="New file for the root key (0600).")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: the store keeps no copy afterwards.")
    ] = False,
) -> None:
    """Take the root key offline: write it to a new 0600 file, then delete it from the store."""
    if not yes:
        raise InvalidRequestError(
            "export-root removes the root key from the store; keep the file offline "
            "and run again with --yes"
        )
    with _pki() as pki:
        pki.export_root(out)
        pki.remove_root_key()
    typer.echo(f"wrote the root key to {out} (0600) and removed it from the store")
    typer.echo("Keep it offline; `interlock pki import-root` brings it back to re-sign the CA.")


@app.command("import-root")
def import_root(
    path: Annotated[Path, typer.Argument(help="The file from export-root.")],
) -> None:
    """Bring the root key back (it must match the root certificate)."""
    with _pki() as pki:
        pki.import_root_key(path)
    typer.echo("the root key is back in the store (sealed); delete or re-secure the file")


@app.command("renew-intermediate")
def renew_intermediate() -> None:
    """Replace the issuing CA by a new one signed by the root (needs the root key)."""
    with _pki() as pki:
        pki.renew_issuing()
        typer.echo(f"new issuing CA {_subject_of(pki.chain_pem())}")
    typer.echo(
        "Certificates issued before keep their chain and stay valid: the previous CA signs "
        "their CRL until the last of them expires (a running gateway loads it within a "
        "second). Relying parties that load CRL files need every list: GET /pki/crl/all.pem "
        "or `interlock pki crl`."
    )


# -- helpers -----------------------------------------------------------------


def _window(text: str | None) -> timedelta:
    window = duration_option(text)
    if window is None:  # callers pass a value
        raise InvalidRequestError("a duration is required")
    return window


def _create_out(directory: Path) -> None:
    """``--out certs/`` in a fresh directory: create it (0700: private keys go there)."""
    if not directory.exists() and not directory.is_symlink():
        directory.mkdir(mode=0o700, parents=True)


def _refuse_existing(directory: Path, names: list[str]) -> None:
    if not directory.is_dir():
        raise InvalidRequestError(f"{directory} is not a directory")
    if len(set(names)) != len(names):
        raise InvalidRequestError("two certificates would write the same files; renew them apart")
    for name in names:
        for path in (directory / f"{name}.key", directory / f"{name}.pem"):
            if path.exists() or path.is_symlink():
                raise InvalidRequestError(f"{path} already exists; refusing to overwrite it")


def _write(directory: Path, name: str, issued: Issued) -> None:
    key, chain = directory / f"{name}.key", directory / f"{name}.pem"
    try:
        write_private_file(key, issued.private_key_pem)
        with chain.open("xb") as file:
            file.write(issued.certificate_pem)
    except OSError as exc:
        raise InvalidRequestError(
            f"certificate {issued.serial} was issued but {exc.filename} could not be written "
            f"({exc.strerror}); revoke it and issue again"
        ) from None
    typer.echo(f"  expires  {_when(issued.not_after)}")
    typer.echo(f"  key      {key} (0600)")
    typer.echo(f"  chain    {chain} (certificate, then the issuing CA)")


def _when(value: datetime) -> str:
    return when(value)


def _days_left(info: CertificateInfo, now: datetime) -> int:
    return int(info.left(now).total_seconds() // SECONDS_PER_DAY)


def _subject_of(pem: bytes) -> str:
    return load_certificate_pem(pem).subject.rfc4514_string()


def _table(rows: list[CertificateInfo], now: datetime, expiring: str | None) -> Table:
    title = f"Certificates expiring within {expiring}" if expiring else "Certificates"
    result = table(
        title,
        Col("serial", identifier=True),  # whole: revoke and renew take it
        "kind",
        Col("name / identity", identifier=True),
        "not after",
        Col("days left", justify="right"),
        "status",
    )
    for info in rows:
        names = info.identity or " ".join(info.hosts)
        status = info.status if not info.ephemeral else f"{info.status} (in memory)"
        if info.revocation_reason:
            status = f"{status}: {info.revocation_reason}"
        result.add_row(
            info.serial,
            info.kind,
            names,
            _when(info.not_after),
            str(_days_left(info, now)),
            status,
        )
    return result


def _as_json(info: CertificateInfo, now: datetime) -> dict[str, Any]:
    return {
        "serial": info.serial,
        "kind": info.kind,
        "name": info.name,
        "identity": info.identity,
        "hosts": list(info.hosts),
        "not_before": iso(info.not_before),
        "not_after": iso(info.not_after),
        "days_left": _days_left(info, now),
        "status": info.status,
        "ephemeral": info.ephemeral,
        "revoked_at": iso(info.revoked_at),
        "revocation_reason": info.revocation_reason,
        "replaced_by": info.replaced_by,
    }
