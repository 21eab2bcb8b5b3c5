"""``interlock audit``: verify the trail and receipts, prove entries, export, prune (a face)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from interlock.cli.context import settings
from interlock.cli.options import ManifestOption
from interlock.config.settings import Settings
from interlock.errors import InvalidRequestError

if TYPE_CHECKING:
    from interlock.audit.storage import LogStore
    from interlock.proofs.cosignature import CosignatureVerifier
    from interlock.proofs.note import NoteVerifier

__all__ = ["app", "log_store"]

app = typer.Typer(
    help="The tamper-evident audit trail: verify, prove, export, prune.", no_args_is_help=True
)

KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="The log's verifier key (name+id+key), or a file holding it.",
        show_default=False,
    ),
]
_MAX_KEY_FILE = 4096


def log_store(current: Settings) -> LogStore:
    """The deployment's audit log (``INTERLOCK_AUDIT_DATABASE_URL``); a SQLite file must exist."""
    from interlock.audit.storage import LogStore, create_audit_engines

    url = current.audit_url
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            raise InvalidRequestError(f"no audit log at {path} (INTERLOCK_AUDIT_DATABASE_URL)")
    engine, writer = create_audit_engines(url)
    return LogStore(engine, writer)


def _verifier(key: str | None, field: str = "--key") -> list[NoteVerifier]:
    from interlock.proofs.errors import CheckpointError
    from interlock.proofs.note import NoteVerifier

    if key is None:
        return []
    text = key
    candidate = Path(key)
    if "+" not in key or candidate.is_file():
        try:
            with candidate.open("rb") as stream:
                text = stream.read(_MAX_KEY_FILE).decode("utf-8", "replace")
        except OSError as exc:
            raise InvalidRequestError(f"{field}: cannot read {key} ({exc.strerror})") from None
    try:
        return [NoteVerifier.parse(text)]
    except CheckpointError as exc:
        raise InvalidRequestError(f"{field}: {exc}") from None


def _time(text: str, field: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequestError(f"{field}: {text!r} is not an ISO 8601 date or time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@app.command("verify")
def verify(
    key: KeyOption = None,
    witness: Annotated[
        list[Path] | None,
        typer.Option(
            "--witness", help="A witnessed checkpoint file (repeat); default: the configured one."
        ),
    ] = None,
    witness_key: Annotated[
        list[str] | None,
        typer.Option(
            "--witness-key",
            help=(
                "A witness's cosigning key (name+id+key, repeat) to check its kept "
                "cosignatures; default: INTERLOCK_AUDIT_WITNESS_KEY."
            ),
        ),
    ] = None,
) -> None:
    """Recompute the log from storage and check every tree head; names the first bad entry.

    Also lists, per witness, the tree heads it cosigned (checked under its key).
    """
    from interlock.audit.verify import verify_log
    from interlock.audit.witness import read_witness_file

    current = settings()
    files = list(witness or [])
    if not files and current.audit_witness_file is not None and current.audit_witness_file.exists():
        files = [current.audit_witness_file]
    notes = [read_witness_file(path) for path in files]
    keys = list(witness_key or [])
    if not keys and current.audit_witness_key is not None:
        keys = [current.audit_witness_key]
    cosigners = [_cosigner(text) for text in keys]
    store = log_store(current)
    try:
        report = verify_log(
            store.engine, trusted=_verifier(key), witnessed=notes, cosigners=cosigners
        )
    finally:
        store.dispose()
    typer.echo(
        f"ok: {report.size} entries ({report.bodies} with bodies, {report.pruned} pruned), "
        f"{report.checkpoints} signed tree heads, {report.witnessed} witnessed; "
        f"origin {report.origin}"
    )
    for cosigned in report.cosigned:
        checked = "verified" if cosigned.verified else "NOT checked: no key given for it"
        when = datetime.fromtimestamp(cosigned.latest_timestamp, UTC).isoformat()
        typer.echo(
            f"cosigned by {cosigned.witness} ({checked}): {len(cosigned.sizes)} tree heads, "
            f"sizes {_ranges(cosigned.sizes)}; latest at {when}"
        )
    if not report.cosigned and cosigners:
        typer.echo("cosigned: no witness cosignature is kept yet")


def _cosigner(text: str) -> CosignatureVerifier:
    from interlock.proofs.cosignature import CosignatureVerifier
    from interlock.proofs.errors import CheckpointError

    try:
        return CosignatureVerifier.parse(text)
    except CheckpointError as exc:
        raise InvalidRequestError(f"--witness-key: {exc}") from None


def _ranges(sizes: tuple[int, ...]) -> str:
    """``1-3, 7, 9-10`` for sorted sizes."""
    runs: list[list[int]] = []
    for size in sizes:
        if runs and size == runs[-1][1] + 1:
            runs[-1][1] = size
        else:
            runs.append([size, size])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


@app.command("prove")
def prove(
    entry: Annotated[int, typer.Argument(help="The entry's index.", min=0)],
    size: Annotated[
        int | None, typer.Option("--size", help="Tree size (default: the latest tree head).")
    ] = None,
) -> None:
    """Print an inclusion proof of ENTRY (JSON), with the signed tree head it is against."""
    from interlock.audit.proofs import ProofReader
    from interlock.audit.schema import BODIES

    store = log_store(settings())
    try:
        latest = store.latest_checkpoint()
        tree = size or (latest.size if latest else 0)
        with store.engine.connect() as connection:
            reader = ProofReader(connection, store.size())
            proof = reader.inclusion(entry, tree)
            body = connection.execute(BODIES.select().where(BODIES.c.idx == entry)).first()
            leaf = reader.leaf(entry)
        heads = {c.size: c.note for c in store.checkpoints()} if size else {}
    finally:
        store.dispose()
    note = latest.note if latest and tree == latest.size else heads.get(tree)
    typer.echo(
        json.dumps(
            {
                "index": entry,
                "tree_size": tree,
                "leaf_hash": _b64(leaf),
                "entry": None if body is None else bytes(body.body).decode(),
                "proof": [_b64(h) for h in proof],
                "checkpoint": note,
            },
            indent=2,
        )
    )


@app.command("consistency")
def consistency(
    old: Annotated[int, typer.Argument(help="The older tree size.", min=1)],
    new: Annotated[int, typer.Argument(help="The newer tree size.", min=1)],
) -> None:
    """Print a consistency proof (JSON) that tree OLD is a prefix of tree NEW."""
    from interlock.audit.proofs import ProofReader

    store = log_store(settings())
    try:
        with store.engine.connect() as connection:
            reader = ProofReader(connection, store.size())
            proof = reader.consistency(old, new)
            roots = reader.root(old), reader.root(new)
        heads = {c.size: c.note for c in store.checkpoints()}
    finally:
        store.dispose()
    typer.echo(
        json.dumps(
            {
                "old_size": old,
                "new_size": new,
                "old_root": _b64(roots[0]),
                "new_root": _b64(roots[1]),
                "proof": [_b64(h) for h in proof],
                "old_checkpoint": heads.get(old),
                "new_checkpoint": heads.get(new),
            },
            indent=2,
        )
    )


@app.command("export")
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write.")],
    start: Annotated[str, typer.Option("--from", help="First time included (ISO 8601).")],
    end: Annotated[str, typer.Option("--to", help="First time excluded (ISO 8601).")],
    integration: Annotated[
        str | None, typer.Option("--integration", help="Only this integration.")
    ] = None,
    fmt: Annotated[
        Literal["jsonl", "csv"], typer.Option("--format", help="jsonl or csv.")
    ] = "jsonl",
) -> None:
    """Export entries with their proofs and tree head; CSV puts the tree head in FILE.checkpoint."""
    from interlock.audit.export import export_log

    begin, finish = _time(start, "--from"), _time(end, "--to")
    store = log_store(settings())
    try:
        with output.open("w", encoding="utf-8", newline="") as stream:
            report = export_log(
                store.engine, stream, start=begin, end=finish, integration=integration, fmt=fmt
            )
    except OSError as exc:
        raise InvalidRequestError(f"--output: cannot write {output} ({exc.strerror})") from None
    finally:
        store.dispose()
    if fmt == "csv":
        Path(f"{output}.checkpoint").write_text(report.checkpoint, encoding="utf-8")
    typer.echo(
        f"exported {report.entries} entries ({report.pruned} pruned) proven in the tree of size "
        f"{report.size}",
        err=True,
    )


@app.command("verify-export")
def verify_export(
    file: Annotated[Path, typer.Argument(help="An export (JSONL, or CSV with FILE.checkpoint).")],
    key: KeyOption = None,
) -> None:
    """Verify an export offline against the log's key (no database needed)."""
    from interlock.sdk.audit import verify_csv_export
    from interlock.sdk.audit import verify_export as check

    trusted = _verifier(key)
    if not trusted:
        raise InvalidRequestError("--key: the log's verifier key is required (interlock audit key)")
    try:
        with file.open(encoding="utf-8", newline="") as stream:
            if file.suffix == ".csv":
                note = Path(f"{file}.checkpoint").read_text(encoding="utf-8")
                summary = verify_csv_export(stream, note, trusted)
            else:
                summary = check(stream, trusted)
    except OSError as exc:
        raise InvalidRequestError(f"{file}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise InvalidRequestError(f"{file}: not UTF-8") from None
    typer.echo(
        f"ok: {summary.entries} entries and {summary.pruned} pruned leaves are in the tree of "
        f"size {summary.checkpoint.size} of {summary.checkpoint.origin}"
    )


@app.command("verify-receipt")
def verify_receipt(
    file: Annotated[Path, typer.Argument(help="A data-subject request's receipt (JSON).")],
    key: KeyOption = None,
) -> None:
    """Verify a data-subject request's receipt offline against the log's key (no database)."""
    from interlock.sdk.receipts import MAX_RECEIPT_BYTES
    from interlock.sdk.receipts import verify_receipt as check

    trusted = _verifier(key)
    if not trusted:
        raise InvalidRequestError("--key: the log's verifier key is required (interlock audit key)")
    try:
        with file.open("rb") as stream:
            document = stream.read(MAX_RECEIPT_BYTES + 1)
    except OSError as exc:
        raise InvalidRequestError(f"{file}: cannot read ({exc.strerror})") from None
    summary = check(document, trusted)
    typer.echo(f"request {summary.request_id}: {summary.kind}, {summary.outcome}")
    for system, status in sorted(summary.systems.items()):
        typer.echo(f"  {system}: {status}")
    typer.echo(
        f"ok: verified against tree head of size {summary.checkpoint.size} of "
        f"{summary.checkpoint.origin}"
    )


@app.command("prune")
def prune(manifest: ManifestOption = None) -> None:
    """Remove entry bodies older than each integration's retention (leaf hashes stay)."""
    from interlock.audit.keys import load_keys
    from interlock.audit.prune import prune as run_prune
    from interlock.audit.service import default_origin
    from interlock.config.loader import load_manifest
    from interlock.store import open_keyring

    current = settings()
    retention: dict[str, timedelta] = {
        name: flow.retention
        for name, flow in load_manifest(manifest or current.manifest).integrations.items()
    }
    keyring = open_keyring(current)  # the file or the HSM, as configured
    store = log_store(current)
    try:
        keys = load_keys(store.engine, keyring, default_origin(current))
        reports = run_prune(store, keys, retention)
    finally:
        store.dispose()
        keyring.close()
    for report in reports:
        typer.echo(
            f"{report.integration}: {report.pruned} bodies before "
            f"{report.before:%Y-%m-%d %H:%M} UTC"
        )


@app.command("key")
def key() -> None:
    """Print the log's verifier key (give it to auditors and witnesses)."""
    from interlock.audit.keys import log_verifier

    store = log_store(settings())
    try:
        verifier = log_verifier(store.engine)
    finally:
        store.dispose()
    if verifier is None:
        raise InvalidRequestError("the audit log has no key yet (nothing was recorded)")
    typer.echo(verifier.vkey)


@app.command("checkpoint")
def checkpoint() -> None:
    """Print the latest signed tree head (C2SP checkpoint)."""
    store = log_store(settings())
    try:
        latest = store.latest_checkpoint()
    finally:
        store.dispose()
    if latest is None:
        raise InvalidRequestError("the audit log is empty")
    typer.echo(latest.note, nl=False)


def _b64(value: bytes) -> str:
    import base64

    return base64.b64encode(value).decode()
