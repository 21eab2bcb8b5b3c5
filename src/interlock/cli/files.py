"""``interlock files``: pin a partner's host key, transfer files, run the drop server, quarantine.

* ``trust-host HOST [--port] [--json]`` — the SSH host keys a server offers, each with
  its fingerprint, for the operator to compare with the partner's and paste
  into ``partners.NAME.sftp.host_keys``; nothing is trusted by this command;
* ``transfer INTEGRATION`` — one pull (into quarantine) or push (the outbox)
  of an SFTP integration now, or the outbox of an outbound AS2 integration
  sent (each file confirmed by the partner's signed MDN, or recorded as
  awaiting its asynchronous MDN); ``run`` — every SFTP and outbound AS2
  integration on its schedule until interrupted (inbound AS2 arrives at the
  gateway's ``/v1/as2/INTEGRATION``);
* ``drop-server [--listen HOST:PORT]`` — Interlock's SFTP drop server for the
  partners with a ``drop:`` account, uploads checked in quarantine; its host
  key is kept in the vault (``secret://interlock/drop-host-key``, made on
  first start) and its fingerprint printed for the partners to pin;
* ``quarantine INTEGRATION [--json]`` — files in processing, and the refused
  ones with their reasons and whether the partner was notified; ``--purge``
  deletes refused files past retention, ``--notify`` delivers again every
  rejection report not yet delivered (a partner's ``notify:``).

Files live under ``DATA_DIR/files`` (directories 0700, files 0600).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Final

import asyncssh
import typer

from interlock.actors import Operator
from interlock.cli import as2_certificates, completion
from interlock.cli.context import served_anchors, settings
from interlock.cli.files_notify import notifier
from interlock.cli.options import ManifestOption
from interlock.cli.output import JsonOption, print_json
from interlock.cli.vault_session import VaultSession, open_vault_session
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.errors import InvalidRequestError, NotFoundError
from interlock.files.as2_async import As2Messages
from interlock.files.as2_outbox import send_outbox
from interlock.files.as2_profile import As2Flow, as2_flow
from interlock.files.as2_send import Sent
from interlock.files.drop_server import Arrival, DropServer
from interlock.files.host_keys import fetch_host_key, fingerprint, key_line
from interlock.files.names import suggest_file_flow
from interlock.files.notify import Notifier, summary
from interlock.files.quarantine import Quarantine, Verdict
from interlock.files.transfers import Outbox, run_every, run_scheduled, transfer_once
from interlock.pki.rfc5280 import serial_hex

__all__ = ["app"]

app = typer.Typer(help="File transfer: SFTP partners, the drop server, quarantine.")

DROP_HOST_KEY: Final = "interlock/drop-host-key"
_OPERATOR: Final = Operator("system:files")

Integration = Annotated[
    str,
    typer.Argument(
        help="A file integration of the manifest.", autocompletion=completion.file_integration_names
    ),
]


def _root() -> Path:
    return settings().data_dir / "files"


def _manifest(path: Path | None) -> Manifest:
    return load_manifest(path or settings().manifest)


def _client_key(session: VaultSession, manifest: Manifest, integration: str) -> bytes:
    flow = manifest.integrations.get(integration)
    spec = flow.files if flow is not None else None
    partner = manifest.partners.get(spec.partner) if spec is not None else None
    if spec is None or partner is None or partner.sftp is None or spec.transport != "sftp":
        hint = suggest_file_flow(manifest, integration, "sftp")
        raise InvalidRequestError(f"{integration!r} is not an SFTP file integration{hint}")
    return session.vault.resolve(partner.sftp.key).reveal()


@contextmanager
def _quarantine(
    session: VaultSession,
    manifest: Manifest,
    integration: str,
    path: Path | None,
    notify: Notifier | None = None,
) -> Iterator[Quarantine]:
    base = (path or settings().manifest).resolve().parent
    yield Quarantine(
        _root(), manifest, integration, audit=session.audit, manifest_dir=base, notifier=notify
    )


@app.command("as2-cert")
def as2_cert(
    name: Annotated[str, typer.Argument(help="The AS2 certificate (our_certificate: pki:NAME).")],
    out: Annotated[Path, typer.Option("--out", help="New file for the certificate (PEM).")],
    chain_out: Annotated[
        Path | None,
        typer.Option(
            "--chain-out",
            help="New file for what it chains to: the issuing CA, then the root (PEM).",
        ),
    ] = None,
) -> None:
    """Export Interlock's AS2 certificate NAME for the partner (public; never the key)."""
    with open_vault_session() as session:
        ours = as2_certificates.identities(session, name)
        chain = ours.chain_pem() + as2_certificates.pki_of(session).root_certificate_pem()
    written = [(out, ours.certificate_pem())]
    if chain_out is not None:
        written.append((chain_out, chain))
    for path, data in written:
        try:
            with path.open("xb") as file:  # never overwrites
                file.write(data)
        except OSError as exc:
            raise InvalidRequestError(f"cannot write {path}: {exc.strerror}") from None
    certificate = ours.current.certificate
    typer.echo(
        f"wrote {out}: {certificate.subject.rfc4514_string()}, serial "
        f"{serial_hex(certificate.serial_number)}, valid until "
        f"{certificate.not_valid_after_utc:%Y-%m-%d}"
    )
    if chain_out is not None:
        typer.echo(f"wrote {chain_out}: the issuing CA and the root, the partner's trust anchor")
    for older in ours.previous:
        typer.echo(
            f"still opening messages encrypted to serial "
            f"{serial_hex(older.certificate.serial_number)} "
            f"until {older.certificate.not_valid_after_utc:%Y-%m-%d}",
            err=True,
        )


@app.command("trust-host")
def trust_host(
    host: Annotated[str, typer.Argument(help="The partner's SFTP host.")],
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 22,
    as_json: JsonOption = False,
) -> None:
    """Show the host keys HOST offers, with fingerprints; compare, then pin one in the manifest."""
    lines = asyncio.run(fetch_host_key(host, port))
    if as_json:
        print_json(
            {
                "host_keys": [
                    {"algorithm": line.split()[0], "fingerprint": fingerprint(line), "line": line}
                    for line in lines
                ]
            }
        )
    else:
        for line in lines:
            typer.echo(f"{fingerprint(line)}  {line}")
    typer.echo(
        "compare these fingerprints with the ones the partner gave you out of band; only "
        "then add the line to partners.NAME.sftp.host_keys",
        err=True,
    )


def _as2(session: VaultSession, manifest: Manifest, integration: str, path: Path | None) -> As2Flow:
    return as2_flow(
        manifest,
        integration,
        resolve=lambda reference: session.vault.resolve(reference).reveal(),
        anchors=served_anchors(settings()),
        base=(path or settings().manifest).resolve().parent,
    )


def _is_as2(manifest: Manifest, integration: str) -> bool:
    flow = manifest.integrations.get(integration)
    return flow is not None and flow.files is not None and flow.files.transport == "as2"


async def _send_fresh(
    session: VaultSession, loaded: Manifest, integration: str, path: Path | None
) -> list[Sent]:
    return await _send_as2(session, _as2(session, loaded, integration, path))


async def _send_as2(session: VaultSession, as2: As2Flow) -> list[Sent]:
    return await send_outbox(
        as2,
        Outbox(_root(), as2.name),
        audit=session.audit,
        messages=As2Messages(session.deployment.engine),
    )


@app.command("transfer")
def transfer(integration: Integration, manifest: ManifestOption = None) -> None:
    """Pull (inbound, into quarantine) or push (outbound, the outbox) one integration now."""
    loaded = _manifest(manifest)
    if _is_as2(loaded, integration):
        with open_vault_session() as session:
            sent = asyncio.run(_send_as2(session, _as2(session, loaded, integration, manifest)))
        for one in sent:
            state = "confirmed" if one.mdn is not None else "awaiting MDN"
            typer.echo(f"sent  {one.sha256[:16]}  {one.size} bytes  {one.message_id}  {state}")
        return
    with open_vault_session() as session:
        notify = notifier(session, loaded)
        with _quarantine(session, loaded, integration, manifest, notify) as q:
            key = _client_key(session, loaded, integration)

            async def once() -> list[Verdict]:
                try:
                    return await transfer_once(
                        loaded,
                        integration,
                        key,
                        audit=session.audit,
                        quarantine=q,
                        outbox=Outbox(_root(), integration),
                    )
                finally:
                    await notify.wait()  # the partner is told before the command ends

            verdicts = asyncio.run(once())
    _print_verdicts(verdicts)


@app.command("run")
def run(manifest: ManifestOption = None) -> None:
    """Every SFTP and outbound AS2 file integration on its schedule, until interrupted."""
    loaded = _manifest(manifest)
    names = [n for n, f in loaded.integrations.items() if f.files and f.files.transport == "sftp"]
    senders = [
        name
        for name, flow in loaded.integrations.items()
        if flow.files and flow.files.transport == "as2" and flow.files.direction == "outbound"
    ]
    if not names and not senders:
        raise InvalidRequestError("the manifest has no SFTP or outbound AS2 file integration")

    async def all_of(session: VaultSession) -> None:
        stop = asyncio.Event()
        notify = notifier(session, loaded)
        with contextlib.ExitStack() as stack:
            tasks: list[Coroutine[Any, Any, object]] = [notify.resume(n) for n in names]
            for name in names:
                held = stack.enter_context(_quarantine(session, loaded, name, manifest, notify))
                tasks.append(
                    run_scheduled(
                        loaded,
                        name,
                        _client_key(session, loaded, name),
                        audit=session.audit,
                        stop=stop,
                        quarantine=held,
                        outbox=Outbox(_root(), name),
                    )
                )
            for name in senders:
                as2 = _as2(session, loaded, name, manifest)
                flow = loaded.integrations[name]
                spec = as2.spec
                # each run reads the flow afresh: a renewed AS2 certificate is used at once
                once = functools.partial(_send_fresh, session, loaded, name, manifest)
                tasks.append(run_every(flow, spec, name, once, audit=session.audit, stop=stop))
            await asyncio.gather(*tasks)

    with open_vault_session() as session, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(all_of(session))


def _drop_host_key(session: VaultSession) -> bytes:
    """The drop server's host key from the vault; made (Ed25519) and stored on first use."""
    try:
        return session.vault.resolve(f"secret://{DROP_HOST_KEY}").reveal()
    except NotFoundError:
        key = asyncssh.generate_private_key("ssh-ed25519").export_private_key()
        session.vault.write(DROP_HOST_KEY, key, actor=_OPERATOR)
        return bytes(key)


@app.command("drop-server")
def drop_server(
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT")] = "127.0.0.1:2222",
    manifest: ManifestOption = None,
) -> None:
    """Interlock's SFTP drop server: partners upload with their keys; files go to quarantine."""
    loaded = _manifest(manifest)
    host, _, port_text = listen.rpartition(":")
    if not host or not port_text.isdigit():
        raise InvalidRequestError("--listen is HOST:PORT")

    async def serve(session: VaultSession) -> None:
        key = _drop_host_key(session)
        public = key_line(asyncssh.import_private_key(key))
        quarantines: dict[str, Quarantine] = {}
        notify = notifier(session, loaded)
        drops = [
            n for n, f in loaded.integrations.items() if f.files and f.files.transport == "drop"
        ]
        resumed = asyncio.gather(*(notify.resume(name) for name in drops))

        async def receive(arrival: Arrival) -> Verdict:
            flow = arrival.integration
            if flow not in quarantines:
                base = (manifest or settings().manifest).resolve().parent
                quarantines[flow] = Quarantine(
                    _root(), loaded, flow, audit=session.audit, manifest_dir=base, notifier=notify
                )
            return await quarantines[flow].accept(
                arrival.name, arrival.data, sidecars=arrival.sidecars, waited=arrival.waited
            )

        server = DropServer(_root(), loaded, host_key=key, receive=receive, audit=session.audit)
        port = await server.start(host, int(port_text))
        typer.echo(f"drop server on {host}:{port}; host key {fingerprint(public)}  {public}")
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()
            resumed.cancel()

    with open_vault_session() as session, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(session))


@app.command("quarantine")
def quarantine(
    integration: Integration,
    purge: Annotated[
        bool, typer.Option("--purge", help="Delete refused files past their retention.")
    ] = False,
    notify_again: Annotated[
        bool,
        typer.Option("--notify", help="Deliver every rejection report not yet delivered, now."),
    ] = False,
    manifest: ManifestOption = None,
    as_json: JsonOption = False,
) -> None:
    """Files in processing, and refused files with their reasons and notification."""
    loaded = _manifest(manifest)
    with open_vault_session() as session:
        notify = notifier(session, loaded)
        with _quarantine(session, loaded, integration, manifest, notify) as q:
            if notify_again:
                again = asyncio.run(notify.resume(integration))
                typer.echo(f"delivered again {again} rejection report(s)", err=True)
            purged = q.purge() if purge else 0
            accepted = [path.name for path in q.processing()]
            refused = [
                _refused_entry(stored, facts, summary(notify.state(integration, stored)))
                for stored, facts in q.refusals()
            ]
    if as_json:
        print_json({"processing": accepted, "refused": refused, "purged": purged})
        return
    for name in accepted:
        typer.echo(f"processing  {name}")
    for entry in refused:
        told = entry["notified"]
        note = "" if told is None else f"  [partner notified: {told}]"
        typer.echo(f"refused     {entry['file']}: {'; '.join(entry['reasons'])}{note}")
    if purge:
        typer.echo(f"purged {purged} refused file(s)", err=True)


def _refused_entry(
    stored: str, facts: dict[str, object], told: dict[str, Any] | None
) -> dict[str, Any]:
    """One refused file for ``quarantine --json`` (docs/cli.md)."""
    reasons = facts.get("reasons")
    return {
        "file": stored,
        "name": facts.get("file"),
        "sha256": facts.get("sha256"),
        "refused_at": facts.get("refused_at"),
        "reasons": list(reasons) if isinstance(reasons, list) else [],
        "correlation_id": facts.get("correlation_id"),
        "notified": None if told is None else told["state"],
        "notified_at": None if told is None else told["at"],
        "notifications": [] if told is None else told["ways"],
    }


def _print_verdicts(verdicts: list[Verdict]) -> None:
    for verdict in verdicts:
        state = "accepted" if verdict.accepted else "refused "
        detail = "" if verdict.accepted else f": {'; '.join(verdict.reasons)}"
        typer.echo(f"{state}  {verdict.sha256[:16]}  {verdict.size} bytes{detail}")
