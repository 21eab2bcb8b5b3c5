"""``interlock messaging``: message keys, broker configuration as code, dead letters.

* ``keys list|rotate|jwks`` — the per-integration keys that sign and encrypt
  messages (:mod:`interlock.messaging.keys`);
* ``plan|apply`` — declare on each broker the exchanges, queues, streams and
  consumers every messaging integration needs (and each consumer's stream of
  every event-streaming integration), with expiry, bounds and the dead-letter
  queue, and report drift (:meth:`BrokerAdapter.plan`);
* ``dlq list|show|replay|purge INTEGRATION`` — refused messages, for
  operators holding the integration's ``dead_letter.role``; every action is
  audited, ``show`` decrypts only for them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from interlock.audit.entry import AuditEntry, Outcome
from interlock.cli import completion
from interlock.cli.context import settings
from interlock.cli.evidence import admin_actor
from interlock.cli.options import ManifestOption
from interlock.cli.output import Col, JsonOption, iso, print_json, print_table, table, when
from interlock.config.checks import known_hint
from interlock.config.manifest import Manifest
from interlock.errors import InvalidRequestError
from interlock.events.streams import event_stream
from interlock.messaging.dead_letters import DeadLetterDesk
from interlock.messaging.keys import KeyInfo, keyed_spec
from interlock.messaging.model import Change, Topology, topology_of
from interlock.services.messaging import MessagingHost, host

__all__ = ["app"]

app = typer.Typer(
    help="Secure messaging: message keys, broker configuration, dead letters.",
    no_args_is_help=True,
)
keys_app = typer.Typer(help="Keys that sign and encrypt each integration's messages.")
dlq_app = typer.Typer(help="Dead letters: refused messages, kept sealed.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(dlq_app, name="dlq")

T = TypeVar("T")

Integration = Annotated[
    str,
    typer.Argument(
        help="A messaging integration of the manifest.",
        autocompletion=completion.messaging_integration_names,
    ),
]
JsonFlag = JsonOption


def _in_host(manifest: Path | None, work: Callable[[MessagingHost], Awaitable[T]]) -> T:
    """Run ``work`` with this host's deployment, keys, vault and audit log opened."""

    async def run() -> T:
        async with host(manifest, settings()) as place:
            return await work(place)

    return asyncio.run(run())


def _messaging(manifest: Manifest, integration: str | None) -> list[str]:
    # Messaging integrations and sealed event streams (encrypt: payload) have keys.
    names = [n for n, flow in manifest.integrations.items() if keyed_spec(flow) is not None]
    if integration is None:
        return names
    if integration not in names:
        known = known_hint(integration, names, "integrations with keys")
        raise InvalidRequestError(
            f"{integration!r} is neither a messaging integration nor a sealed event stream "
            f"of the manifest{known}"
        )
    return [integration]


@keys_app.command("list")
def keys_list(
    integration: Annotated[
        str | None,
        typer.Argument(
            help="Only this integration.", autocompletion=completion.messaging_integration_names
        ),
    ] = None,
    manifest: ManifestOption = None,
    as_json: JsonFlag = False,
) -> None:
    """The keys of every messaging integration: party, kid, algorithm, when they act."""

    async def rows(place: MessagingHost) -> list[KeyInfo]:
        names = _messaging(place.manifest, integration)
        return [row for name in names for row in place.keys.rows(name)]

    found = _in_host(manifest, rows)
    now = datetime.now(UTC)
    if as_json:
        print_json({"keys": [_key_json(row, now) for row in found]})
        return
    result = table(
        "Message keys",
        Col("integration", identifier=True),
        Col("party", identifier=True),
        "use",
        Col("kid", identifier=True),
        "alg",
        "activates",
        "retires",
        "state",
    )
    for row in found:
        result.add_row(
            row.integration,
            row.party,
            row.use,
            row.kid,
            row.alg,
            _when(row.activates_at),
            _when(row.retires_at),
            row.state(now),
        )
    print_table(result)


def _when(value: datetime | None) -> str:
    return when(value)


def _key_json(row: KeyInfo, now: datetime) -> dict[str, Any]:
    return {
        "integration": row.integration,
        "party": row.party,
        "use": row.use,
        "kid": row.kid,
        "alg": row.alg,
        "created_at": iso(row.created_at),
        "activates_at": iso(row.activates_at),
        "retires_at": iso(row.retires_at),
        "state": row.state(now),
    }


@keys_app.command("rotate")
def keys_rotate(
    integration: Integration,
    party: Annotated[
        str | None,
        typer.Option("--party", help="Only this party's key (the producer or a consumer)."),
    ] = None,
    manifest: ManifestOption = None,
) -> None:
    """Publish new keys now; old ones keep opening messages until those expire."""

    async def rotate(place: MessagingHost) -> list[str]:
        (name,) = _messaging(place.manifest, integration)
        flow = place.manifest.integrations[name]
        spec = keyed_spec(flow)
        if spec is None:  # _messaging returns only integrations with keys
            raise InvalidRequestError(f"{name!r} has no keys of its own in the manifest")
        if party is not None and party not in {flow.client, *spec.consumers}:
            raise InvalidRequestError(
                f"{party!r} is neither the producer ({flow.client}) nor a consumer "
                f"({', '.join(spec.consumers)}) of {name}"
            )
        created = place.keys.rotate(name, spec, flow.client, party)
        await place.audit.record_async(
            AuditEntry(
                actor=admin_actor().label,
                action="messaging.keys.rotate",
                integration=name,
                outcome=Outcome(result="success"),
                details={"party": party or "all", "keys": len(created)},
            )
        )
        return created

    created = _in_host(manifest, rotate)
    typer.echo(f"published {len(created)} key(s) for {integration}: {', '.join(created)}")


@keys_app.command("jwks")
def keys_jwks(integration: Integration, manifest: ManifestOption = None) -> None:
    """Print the integration's public keys (RFC 7517), for partners outside Interlock."""

    async def jwks(place: MessagingHost) -> dict[str, Any]:
        (name,) = _messaging(place.manifest, integration)
        return place.keys.jwks(name)

    print_json(_in_host(manifest, jwks))


def _brokered(manifest: Manifest, integration: str | None) -> list[tuple[str, str, list[Topology]]]:
    """``(integration, broker, topologies)`` of every integration on a broker (or the one named).

    Messaging integrations have one topology; an event-streaming integration one per
    consumer (its own stream, interlock.events).
    """
    found: list[tuple[str, str, list[Topology]]] = []
    for name, flow in manifest.integrations.items():
        if integration is not None and name != integration:
            continue
        if flow.messaging is not None:
            found.append((name, flow.messaging.broker, [topology_of(manifest, name)]))
        elif flow.events is not None:
            found.append((name, flow.events.broker, event_stream(manifest, name).topologies()))
    if integration is not None and not found:
        names = [n for n, f in manifest.integrations.items() if f.messaging or f.events]
        known = known_hint(integration, names, "messaging or event-streaming integrations")
        raise InvalidRequestError(
            f"{integration!r} is neither a messaging nor an event-streaming integration of "
            f"the manifest{known}"
        )
    return found


def _on_brokers(
    manifest: Path | None,
    integration: str | None,
    action: Callable[[Any, Any], Awaitable[list[Change]]],
) -> list[tuple[str, Change]]:
    """``action(adapter, topology)`` for each topology, one connection per broker."""

    async def run(place: MessagingHost) -> list[tuple[str, Change]]:
        done: list[tuple[str, Change]] = []
        by_broker: dict[str, list[tuple[str, list[Topology]]]] = {}
        for name, broker, topologies in _brokered(place.manifest, integration):
            by_broker.setdefault(broker, []).append((name, topologies))
        for broker, flows in by_broker.items():
            async with place.broker(broker, None) as adapter:
                for name, topologies in flows:
                    for topology in topologies:
                        changes = await action(adapter, topology)
                        done.extend((name, change) for change in changes)
        return done

    return _in_host(manifest, run)


def _print_changes(found: list[tuple[str, Change]], as_json: bool) -> None:
    if as_json:
        print_json({"changes": [{"integration": n, **asdict(c)} for n, c in found]})
        return
    result = table(
        None,
        "action",
        Col("integration", identifier=True),
        "kind",
        Col("name", identifier=True),
        "detail",
    )
    for name, change in found:
        result.add_row(change.action, name, change.kind, change.name, change.detail)
    print_table(result)


@app.command("plan")
def plan(
    integration: Annotated[
        str | None,
        typer.Argument(
            help="Only this integration.", autocompletion=completion.brokered_integration_names
        ),
    ] = None,
    manifest: ManifestOption = None,
    as_json: JsonFlag = False,
) -> None:
    """What apply would declare on the brokers, and drift; changes nothing (exit 3 on drift)."""
    found = _on_brokers(manifest, integration, lambda a, t: a.plan(t))
    _print_changes(found, as_json)
    if any(change.action == "drift" for _, change in found):
        raise typer.Exit(3)


@app.command("apply")
def apply(
    integration: Annotated[
        str | None,
        typer.Argument(
            help="Only this integration.", autocompletion=completion.brokered_integration_names
        ),
    ] = None,
    manifest: ManifestOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Declare what messaging and event streams need on the brokers (idempotent; 3: drift)."""
    found = _on_brokers(manifest, integration, lambda a, t: a.apply(t))
    _print_changes(found, as_json)
    if any(change.action == "drift" for _, change in found):
        raise typer.Exit(3)


def _with_desk(
    manifest: Path | None, integration: str, work: Callable[[DeadLetterDesk], Awaitable[T]]
) -> T:
    async def run(place: MessagingHost) -> T:
        (name,) = _messaging(place.manifest, integration)
        spec = place.manifest.integrations[name].messaging
        if spec is None:  # _messaging returns only integrations with messaging
            raise InvalidRequestError(f"{name!r} is not a messaging integration of the manifest")
        async with place.broker(spec.broker, None) as adapter:
            desk = DeadLetterDesk(
                place.manifest,
                name,
                broker=adapter,
                keys=place.keys,
                audit=place.audit,
                operator=admin_actor(),
            )
            return await work(desk)

    return _in_host(manifest, run)


@dlq_app.command("list")
def dlq_list(
    integration: Integration,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    manifest: ManifestOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Dead letters, oldest first: id, reason, consumer, when, size (never the payload)."""
    views = _with_desk(manifest, integration, lambda desk: desk.list(limit))
    if as_json:
        print_json({"dead_letters": [asdict(view) for view in views]})
        return
    result = table(
        "Dead letters",
        Col("ref", identifier=True),
        Col("message id", identifier=True),
        "reason",
        Col("consumer", identifier=True),
        "dead at",
        Col("size", justify="right"),
    )
    for view in views:
        result.add_row(
            view.ref,
            view.message_id,
            view.reason,
            view.consumer or "-",
            _when(view.dead_at),
            str(view.size),
        )
    print_table(result)
    typer.echo(f"{len(views)} dead letter(s)", err=True)


@dlq_app.command("show")
def dlq_show(
    integration: Integration,
    ref: Annotated[str, typer.Argument(help="The dead letter (REF from dlq list).")],
    manifest: ManifestOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Decrypt and print one dead letter (needs the dead-letter role; audited)."""
    opened = _with_desk(manifest, integration, lambda desk: desk.show(ref))
    facts = asdict(opened.facts)
    if as_json:
        print_json({"facts": facts, "signer_kid": opened.signer_kid, "payload": opened.payload})
        return
    for label, value in (
        ("message id", opened.facts.message_id),
        ("integration", opened.facts.integration),
        ("producer", opened.facts.producer),
        ("signed by", opened.signer_kid),
        ("issued", _when(opened.facts.issued_at)),
        ("expires", _when(opened.facts.expires_at)),
    ):
        typer.echo(f"{label:<12} {value}")
    typer.echo(json.dumps(opened.payload, indent=2, ensure_ascii=False))


@dlq_app.command("replay")
def dlq_replay(
    integration: Integration,
    ref: Annotated[str, typer.Argument(help="The dead letter (REF from dlq list).")],
    manifest: ManifestOption = None,
) -> None:
    """Publish one dead letter again, sealed as it was (audited)."""
    message_id = _with_desk(manifest, integration, lambda desk: desk.replay(ref))
    typer.echo(f"replayed message {message_id}")


@dlq_app.command("purge")
def dlq_purge(
    integration: Integration,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: the messages are gone.")] = False,
    manifest: ManifestOption = None,
) -> None:
    """Delete every dead letter of the integration (audited)."""
    if not yes:
        raise InvalidRequestError("purge deletes every dead letter: confirm with --yes")
    removed = _with_desk(manifest, integration, lambda desk: desk.purge())
    typer.echo(f"purged {removed} dead letter(s)")
