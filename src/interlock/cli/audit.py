"""``interlock audit``: verify the trail and receipts, prove entries, export, prune (a face)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from interlock.cli.context import settings
from interlock.cli.options import ManifestOption
from interlock.cli.output import Col, JsonOption, iso, print_json, print_table, table
from interlock.config.settings import Settings
from interlock.errors import InvalidRequestError

if TYPE_CHECKING:
    from interlock.audit.search import Hit, SearchResult
    from interlock.audit.storage import LogStore
    from interlock.audit.verify import VerifyReport
    from interlock.proofs.cosignature import CosignatureVerifier
    from interlock.proofs.note import NoteVerifier

__all__ = ["app", "log_store"]

app = typer.Typer(
    help="The tamper-evident audit trail: search, verify, prove, export, prune.",
    no_args_is_help=True,
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


def _moment(text: str, field: str, now: datetime) -> datetime:
    """RFC 3339 (``2026-12-01T00:00:00Z``) or a duration back from now (``30d``, ``PT12H``)."""
    from interlock.config.units import parse_duration

    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        return _time(text, field)
    except InvalidRequestError:
        raise InvalidRequestError(
            f"{field}: {text!r} is neither an RFC 3339 time nor a duration such as '30d'"
        ) from None


@app.command("search")
def search(  # noqa: PLR0917  (typer maps each parameter to an option)
    correlation_id: Annotated[
        str | None,
        typer.Option("--correlation-id", help="The request's X-Request-Id.", show_default=False),
    ] = None,
    client: Annotated[
        str | None,
        typer.Option(
            "--client", help="Entries by this client (actor client:NAME).", show_default=False
        ),
    ] = None,
    integration: Annotated[
        str | None, typer.Option("--integration", help="Only this integration.", show_default=False)
    ] = None,
    action: Annotated[
        str | None,
        typer.Option(
            "--action", help="Only this action (gateway.request, ...).", show_default=False
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="From this time (RFC 3339) or this long ago (30d, PT12H).",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until", help="Before this time (RFC 3339) or this long ago (1h).", show_default=False
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option("--limit", help="At most this many entries, newest first.", min=1, max=10_000),
    ] = 100,
    proofs: Annotated[
        bool,
        typer.Option(
            "--proofs", help="Each entry with its inclusion proof against the latest tree head."
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Find entries by correlation id, client, integration, action and time, through the index.

    Newest first. Entries whose body was pruned are no longer indexed, so they
    are not found. With --proofs each entry comes with its RFC 9162 inclusion
    proof against the latest signed tree head, which is printed too.
    """
    from interlock.audit.search import SearchQuery
    from interlock.audit.search import search as run_search

    now = datetime.now(UTC)
    query = SearchQuery(
        correlation_id=correlation_id,
        client=client,
        integration=integration,
        action=action,
        since=None if since is None else _moment(since, "--since", now),
        until=None if until is None else _moment(until, "--until", now),
        limit=limit,
    )
    store = log_store(settings())
    try:
        result = run_search(store, query, proofs=proofs)
    finally:
        store.dispose()
    if json_output:
        print_json(_search_document(result))
        return
    _print_search(result, proofs=proofs)


def _search_document(result: SearchResult) -> dict[str, object]:
    return {
        "entries": [_hit_document(hit) for hit in result.hits],
        "tree_size": result.tree_size,
        "checkpoint": result.checkpoint,
        "truncated": result.truncated,
        "pruned": result.pruned,
        "backfill_pending": result.backfill_pending,
        "hints": list(result.hints),
    }


def _hit_document(hit: Hit) -> dict[str, object]:
    fields = hit.entry
    outcome = fields.get("outcome") or {}
    return {
        "index": hit.index,
        "time": iso(hit.time),
        "actor": fields.get("actor"),
        "action": fields.get("action"),
        "integration": fields.get("integration"),
        "correlation_id": fields.get("correlation_id"),
        "result": outcome.get("result"),
        "status": outcome.get("status"),
        "reason": fields.get("reason"),
        "entry": hit.body.decode(),
        "leaf_hash": _b64(hit.leaf_hash),
        "proof": None if hit.proof is None else [_b64(h) for h in hit.proof],
    }


def _print_search(result: SearchResult, *, proofs: bool) -> None:
    rows = table(
        None,
        Col("index", identifier=True, justify="right"),
        Col("time", identifier=True),
        "actor",
        "action",
        "integration",
        "result",
        Col("correlation id", identifier=True),
    )
    for hit in result.hits:
        doc = _hit_document(hit)
        status = "" if doc["status"] is None else f" {doc['status']}"
        rows.add_row(
            str(hit.index),
            str(doc["time"]),
            str(doc["actor"]),
            str(doc["action"]),
            str(doc["integration"] or ""),
            f"{doc['result']}{status}",
            str(doc["correlation_id"] or ""),
        )
    if result.hits:
        print_table(rows)
    more = " (more matched: narrow the search or raise --limit)" if result.truncated else ""
    found = len(result.hits)
    noun = "entry" if found == 1 else "entries"
    typer.echo(f"{found} {noun} in the tree of size {result.tree_size}{more}")
    for hint in result.hints:
        typer.echo(hint)
    if result.pruned:
        typer.echo(f"{result.pruned} entries of the log were pruned (retention): not searchable")
    if result.backfill_pending:
        typer.echo(
            f"{result.backfill_pending} older entries are not indexed yet (backfill pending)"
        )
    if proofs and result.hits and result.checkpoint is not None:
        typer.echo(f"inclusion proofs in the tree of size {result.tree_size} (RFC 9162):")
        for hit in result.hits:
            hashes = " ".join(_b64(h) for h in hit.proof or ())
            typer.echo(f"{hit.index}: leaf {_b64(hit.leaf_hash)} proof {hashes or '(none)'}")
        typer.echo("signed tree head:")
        typer.echo(result.checkpoint, nl=False)


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
    json_output: JsonOption = False,
) -> None:
    """Recompute the log from storage and check every tree head; names the first bad entry.

    Also lists, per witness, the tree heads it cosigned (checked under its key).
    """
    from interlock.audit.verify import verify_log
    from interlock.audit.witness import configured_witness, read_witness_file

    current = settings()
    notes = [read_witness_file(path) for path in witness or []]
    keys = list(witness_key or [])
    if not keys and current.audit_witness_key is not None:
        keys = [current.audit_witness_key]
    cosigners = [_cosigner(text) for text in keys]
    store = log_store(current)
    try:
        if not witness:  # a missing configured file fails once the log holds entries
            notes = configured_witness(current.audit_witness_file, store.size())
        report = verify_log(
            store.engine, trusted=_verifier(key), witnessed=notes, cosigners=cosigners
        )
    finally:
        store.dispose()
    if json_output:
        print_json(_verify_document(report))
        return
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


def _verify_document(report: VerifyReport) -> dict[str, object]:
    return {
        "ok": True,
        "origin": report.origin,
        "size": report.size,
        "bodies": report.bodies,
        "pruned": report.pruned,
        "checkpoints": report.checkpoints,
        "witnessed": report.witnessed,
        "cosigned": [
            {
                "witness": c.witness,
                "verified": c.verified,
                "sizes": list(c.sizes),
                "latest": iso(datetime.fromtimestamp(c.latest_timestamp, UTC)),
            }
            for c in report.cosigned
        ],
    }


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
    json_output: JsonOption = False,
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
    if json_output:
        print_json(
            {
                "ok": True,
                "entries": summary.entries,
                "pruned": summary.pruned,
                "tree_size": summary.checkpoint.size,
                "origin": summary.checkpoint.origin,
            }
        )
        return
    typer.echo(
        f"ok: {summary.entries} entries and {summary.pruned} pruned leaves are in the tree of "
        f"size {summary.checkpoint.size} of {summary.checkpoint.origin}"
    )


@app.command("verify-receipt")
def verify_receipt(
    file: Annotated[Path, typer.Argument(help="A data-subject request's receipt (JSON).")],
    key: KeyOption = None,
    json_output: JsonOption = False,
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
    if json_output:
        print_json(
            {
                "ok": True,
                "request_id": summary.request_id,
                "kind": summary.kind,
                "outcome": summary.outcome,
                "systems": dict(sorted(summary.systems.items())),
                "tree_size": summary.checkpoint.size,
                "origin": summary.checkpoint.origin,
            }
        )
        return
    typer.echo(f"request {summary.request_id}: {summary.kind}, {summary.outcome}")
    for system, status in sorted(summary.systems.items()):
        typer.echo(f"  {system}: {status}")
    typer.echo(
        f"ok: verified against tree head of size {summary.checkpoint.size} of "
        f"{summary.checkpoint.origin}"
    )


RemovedRetentionOption = Annotated[
    str | None,
    typer.Option(
        "--removed-retention",
        help="Retention for the bodies of integrations no longer in the manifest whose "
        "retention no stored manifest version gives (90d, P1Y).",
        show_default=False,
    ),
]


@app.command("prune")
def prune(
    manifest: ManifestOption = None,
    removed_retention: RemovedRetentionOption = None,
    json_output: JsonOption = False,
) -> None:
    """Remove entry bodies older than each integration's retention (leaf hashes stay).

    An integration removed from the manifest keeps the retention it was last
    declared with (the newest stored manifest version that names it), else
    --removed-retention; without either its bodies are kept and the command fails.
    """
    from interlock.audit.keys import load_keys
    from interlock.audit.prune import prune as run_prune
    from interlock.audit.prune import retentions
    from interlock.audit.service import default_origin
    from interlock.cli.options import duration_option
    from interlock.config.loader import load_manifest
    from interlock.store.deployment import open_deployment

    current = settings()
    fallback = duration_option(removed_retention)  # a bad value fails before anything is read
    retention: dict[str, timedelta] = {
        name: flow.retention
        for name, flow in load_manifest(manifest or current.manifest).integrations.items()
    }
    deployment = open_deployment(current)  # the keyring, and the stored manifest versions
    store = log_store(current)
    try:
        plan = retentions(store, deployment.engine, retention, fallback)
        keys = load_keys(store.engine, deployment.keyring, default_origin(current))
        reports = run_prune(store, keys, plan.keep)
    finally:
        store.dispose()
        deployment.close()
    if json_output:
        print_json(
            {
                "integrations": [
                    {
                        "integration": r.integration,
                        "before": iso(r.before),
                        "pruned": r.pruned,
                        "entry_index": r.entry_index,
                        "removed": r.integration in plan.removed,
                    }
                    for r in reports
                ],
                "kept": list(plan.unknown),
            }
        )
    else:
        for report in reports:
            source = plan.removed.get(report.integration)
            note = f" ({source})" if source is not None else ""
            typer.echo(
                f"{report.integration}: {report.pruned} bodies before "
                f"{report.before:%Y-%m-%d %H:%M} UTC{note}"
            )
    if plan.unknown:
        raise InvalidRequestError(
            f"kept every body of {', '.join(plan.unknown)}: no longer in the manifest, and no "
            "stored manifest version declares a retention; pass --removed-retention DURATION"
        )


@app.command("key")
def key(json_output: JsonOption = False) -> None:
    """Print the log's verifier key (give it to auditors and witnesses)."""
    from interlock.audit.keys import log_verifier

    store = log_store(settings())
    try:
        verifier = log_verifier(store.engine)
    finally:
        store.dispose()
    if verifier is None:
        raise InvalidRequestError("the audit log has no key yet (nothing was recorded)")
    if json_output:
        print_json({"vkey": verifier.vkey, "name": verifier.name, "key_id": verifier.key_id.hex()})
        return
    typer.echo(verifier.vkey)


@app.command("checkpoint")
def checkpoint(json_output: JsonOption = False) -> None:
    """Print the latest signed tree head (C2SP checkpoint)."""
    store = log_store(settings())
    try:
        latest = store.latest_checkpoint()
    finally:
        store.dispose()
    if latest is None:
        raise InvalidRequestError("the audit log is empty")
    if json_output:
        print_json(
            {
                "origin": latest.note.split("\n", 1)[0],
                "size": latest.size,
                "root": _b64(latest.root),
                "note": latest.note,
            }
        )
        return
    typer.echo(latest.note, nl=False)


def _b64(value: bytes) -> str:
    import base64

    return base64.b64encode(value).decode()
