"""Producers and consumers of messaging and event streams, wired to this host's deployment.

``async with producer("order-events") as out: await out.publish({...})``;
``async with consumer("order-events", "crm-consumer") as inbox: await inbox.start(handle)``;
``event_producer`` and ``event_consumer`` likewise for event-streaming integrations
(the schema registry in the store, each consumer on its own stream).

What is opened, and closed on exit: the deployment (settings from the
environment, as every ``interlock`` command), its audit log, the vault (the
broker password named by ``credentials``), the message keys, the
de-duplication store (Redis when ``INTERLOCK_REDIS_URL`` is set, so consumer
replicas share it; otherwise the store), and the broker connection: TLS
verified against the broker's ``ca``, with a client certificate the
deployment's PKI issues to the service's client (``client_cert: pki:auto``;
the client must allow mtls).
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

from interlock.audit.service import AuditLog
from interlock.audit.sink import AuditSink
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.config.settings import Settings
from interlock.crypto.keyfile import write_private_file
from interlock.errors import ConfigError, did_you_mean
from interlock.events.consumer import EventConsumer
from interlock.events.producer import EventProducer
from interlock.events.registry import SchemaRegistry
from interlock.gateway.tls import trust_context
from interlock.messaging.brokers import open_broker
from interlock.messaging.consumer import Consumer
from interlock.messaging.keys import MessagingKeys
from interlock.messaging.model import BrokerAdapter
from interlock.messaging.producer import Producer
from interlock.pki.authority import Issued, Pki
from interlock.pki.enrolment import issue_for_client
from interlock.pki.local_ca import LOCAL_CA_NAME
from interlock.replay.idempotency import IdempotencyStore, idempotency_store
from interlock.secrets.vault import Vault
from interlock.store import Deployment, open_deployment
from interlock.store.redis_client import connect_redis

__all__ = [
    "MessagingHost",
    "consumer",
    "event_consumer",
    "event_producer",
    "host",
    "producer",
]

# The certificate a service presents to the broker; a restarted service gets a new one.
SERVICE_CERTIFICATE: Final = timedelta(days=1)
# An operator command's connection: the certificate outlives it by little.
OPERATOR_CERTIFICATE: Final = timedelta(hours=1)


@dataclass(frozen=True)
class MessagingHost:
    """What this host's deployment gives a messaging service."""

    settings: Settings
    manifest: Manifest
    deployment: Deployment
    audit: AuditSink
    vault: Vault
    keys: MessagingKeys

    def tls(self, broker: str, certificate: Issued | None) -> ssl.SSLContext:
        """A context that verifies broker ``broker`` and presents ``certificate`` if given."""
        spec = self.manifest.brokers.get(broker)
        if spec is None:
            raise ConfigError(
                f"no broker {broker!r} in the manifest{did_you_mean(broker, self.manifest.brokers)}"
            )
        anchors = {}
        ca_file = self.settings.data_dir / "ca.pem"
        if ca_file.exists():
            anchors[f"pki:{LOCAL_CA_NAME}"] = ca_file
        context = trust_context(spec.ca, anchors, (spec.tls or self.manifest.tls).min_version)
        if certificate is not None:
            with tempfile.TemporaryDirectory(prefix="interlock-broker-") as work:
                chain, key = Path(work) / "client.pem", Path(work) / "client.key"
                chain.write_bytes(certificate.certificate_pem)
                write_private_file(key, certificate.private_key_pem)
                context.load_cert_chain(chain, key)
        return context

    def certificate(self, broker: str, client: str | None) -> Issued | None:
        """A client certificate when the broker asks for one (``client_cert: pki:auto``).

        For ``client`` (a manifest client allowed mtls), or with None for the
        operator running a command (``spiffe://DOMAIN/operator``, one hour).
        """
        if self.manifest.brokers[broker].client_cert is None:
            return None
        d = self.deployment
        pki = Pki(d.engine, d.keyring, d.deployment_id, self.settings.trust_domain)
        if client is None:
            identity = f"spiffe://{self.settings.trust_domain}/operator"
            return pki.issue_client_identity(
                identity, OPERATOR_CERTIFICATE, name="operator", ephemeral=True
            )
        return issue_for_client(pki, self.manifest, client, SERVICE_CERTIFICATE)

    def dedup(self) -> IdempotencyStore:
        """The de-duplication store every replica of a consumer shares (Redis, else the store)."""
        shared = connect_redis(self.settings)
        return idempotency_store(self.deployment.engine, shared, self.deployment.keyring)

    def registry(self) -> SchemaRegistry:
        """The deployment's schema registry, for this manifest's event subjects."""
        return SchemaRegistry(self.deployment.engine, self.manifest, audit=self.audit)

    @asynccontextmanager
    async def broker(self, broker: str, client: str | None) -> AsyncIterator[BrokerAdapter]:
        """A connection to ``broker`` as ``client`` (None: as the operator)."""
        certificate = self.certificate(broker, client)
        context = self.tls(broker, certificate)
        reference = self.manifest.brokers[broker].credentials
        password = None if reference is None else self.vault.resolve(reference).reveal().decode()
        adapter = await open_broker(self.manifest.brokers[broker], tls=context, password=password)
        try:
            yield adapter
        finally:
            await adapter.close()


@asynccontextmanager
async def host(
    manifest: str | Path | None = None, settings: Settings | None = None
) -> AsyncIterator[MessagingHost]:
    """This host's deployment, opened for a messaging service; closed on exit."""
    current = settings or Settings()
    loaded = load_manifest(Path(manifest) if manifest is not None else current.manifest)
    deployment = open_deployment(current)
    try:
        log = AuditLog.open(deployment.settings, deployment.keyring)
        try:
            vault = Vault(deployment.engine, deployment.keyring, audit=log.sink)
            keys = MessagingKeys(deployment.engine, deployment.keyring)
            keys.ensure(loaded)
            yield MessagingHost(current, loaded, deployment, log.sink, vault, keys)
        finally:
            log.close()
    finally:
        deployment.close()


def _spec_broker(place: MessagingHost, integration: str) -> str:
    """The broker of a messaging or event-streaming integration."""
    flow = place.manifest.integrations.get(integration)
    section = None if flow is None else (flow.messaging or flow.events)
    if section is None:
        names = [n for n, f in place.manifest.integrations.items() if f.messaging or f.events]
        raise ConfigError(
            f"{integration!r} is neither a messaging nor an event-streaming integration of "
            f"the manifest{did_you_mean(integration, names)}"
        )
    return section.broker


@asynccontextmanager
async def _connected(
    integration: str,
    client: str | None,
    manifest: str | Path | None,
    settings: Settings | None,
) -> AsyncIterator[tuple[MessagingHost, BrokerAdapter]]:
    """The host and a broker connection as ``client`` (None: the integration's producer)."""
    async with AsyncExitStack() as stack:
        place = await stack.enter_async_context(host(manifest, settings))
        broker = _spec_broker(place, integration)
        who = client if client is not None else place.manifest.integrations[integration].client
        yield place, await stack.enter_async_context(place.broker(broker, who))


@asynccontextmanager
async def producer(
    integration: str, *, manifest: str | Path | None = None, settings: Settings | None = None
) -> AsyncIterator[Producer]:
    """The producer of ``integration`` (as its client), connected; closed on exit."""
    async with _connected(integration, None, manifest, settings) as (place, adapter):
        yield Producer(
            place.manifest, integration, keys=place.keys, broker=adapter, audit=place.audit
        )


@asynccontextmanager
async def consumer(
    integration: str,
    name: str,
    *,
    manifest: str | Path | None = None,
    settings: Settings | None = None,
) -> AsyncIterator[Consumer]:
    """Consumer ``name`` of ``integration``, connected; closed on exit."""
    async with _connected(integration, name, manifest, settings) as (place, adapter):
        yield Consumer(
            place.manifest,
            integration,
            name,
            keys=place.keys,
            broker=adapter,
            dedup=place.dedup(),
            audit=place.audit,
        )


@asynccontextmanager
async def event_producer(
    integration: str, *, manifest: str | Path | None = None, settings: Settings | None = None
) -> AsyncIterator[EventProducer]:
    """The producer of event-streaming ``integration`` (as its client), connected."""
    async with _connected(integration, None, manifest, settings) as (place, adapter):
        yield EventProducer(
            place.manifest,
            integration,
            registry=place.registry(),
            broker=adapter,
            audit=place.audit,
            keys=place.keys,
        )


@asynccontextmanager
async def event_consumer(
    integration: str,
    name: str,
    *,
    reader_versions: Mapping[str, int] | None = None,
    manifest: str | Path | None = None,
    settings: Settings | None = None,
) -> AsyncIterator[EventConsumer]:
    """Consumer ``name`` of event-streaming ``integration`` (its own stream), connected."""
    async with _connected(integration, name, manifest, settings) as (place, adapter):
        yield EventConsumer(
            place.manifest,
            integration,
            name,
            registry=place.registry(),
            broker=adapter,
            dedup=place.dedup(),
            audit=place.audit,
            keys=place.keys,
            reader_versions=reader_versions,
        )
