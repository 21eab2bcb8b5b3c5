"""`interlock messaging` and the service wiring, against a real NATS server over mutual TLS.

The server trusts the deployment's PKI for client certificates, as a broker
configured with ``client_cert: pki:auto`` would: the producer, the consumer
and the operator's commands each present a certificate the deployment issued
and the broker password from the vault.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from interlock.actors import Operator
from interlock.audit.service import AuditLog
from interlock.cli.main import main
from interlock.config.settings import load_settings
from interlock.events.consumer import Event
from interlock.events.producer import EventRefused
from interlock.messaging.consumer import Message, MessageRejected
from interlock.pki.authority import Pki
from interlock.secrets.vault import Vault
from interlock.services.messaging import consumer, event_consumer, event_producer, producer
from interlock.store import open_deployment
from interlock.testing import nats_node
from interlock.testing.brokers import TlsBroker
from tests.cli.test_evidence import _entries
from tests.conftest import _available, isolate_cli

pytestmark = [pytest.mark.processes, pytest.mark.nats]

MANIFEST = """\
version: 1
organisation:
  controller: {{name: Example GmbH, contact: privacy@example.com}}
systems:
  erp: {{url: "https://erp.example", location: DE}}
  crm: {{url: "https://crm.example", location: DE}}
brokers:
  bus:
    kind: nats
    url: "{url}"
    location: DE
    ca: "file:{ca}"
    credentials: "secret://bus/password"
    client_cert: "pki:auto"
roles:
  dlq-handler: {{scopes: [messaging.dead_letters]}}
clients:
  erp-events: {{auth: [mtls]}}
  crm-events: {{auth: [mtls]}}
operators:
  {operator}: {{roles: [dlq-handler]}}
integrations:
  order-events:
    type: messaging
    source: erp
    target: crm
    client: erp-events
    purpose: Tell the CRM about confirmed orders
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: P30D
    messaging:
      broker: bus
      destination: orders
      consumers: [crm-events]
      schema: {{type: object, required: [id], properties: {{id: {{type: string}}}}}}
      fields: [id, customer.email]
      dead_letter: {{role: dlq-handler}}
"""


def _operator() -> str:
    # The name the CLI acts under (interlock.cli.evidence.admin_actor): the process's user id's.
    return pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture
def deployment_and_broker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[Path]:
    """An initialised deployment, a NATS server trusting its PKI, and the manifest."""
    isolate_cli(monkeypatch, tmp_path)
    _available(nats_node.unavailable())
    assert main(["init"]) == 0
    settings = load_settings()
    deployment = open_deployment(settings)
    try:
        pki = Pki(
            deployment.engine, deployment.keyring, deployment.deployment_id, settings.trust_domain
        )
        pki.ensure()
        root = pki.root_certificate_pem()
        with nats_node.started(tmp_path / "nats", client_ca=root) as broker:
            _store_password(broker)
            path = tmp_path / "interlock.yaml"
            path.write_text(
                MANIFEST.format(url=broker.url, ca=broker.ca_file, operator=_operator())
            )
            capsys.readouterr()
            yield path
    finally:
        deployment.close()


def _store_password(broker: TlsBroker) -> None:
    deployment = open_deployment(load_settings())
    try:
        log = AuditLog.open(deployment.settings, deployment.keyring)
        try:
            vault = Vault(deployment.engine, deployment.keyring, audit=log.sink)
            assert broker.password is not None
            vault.write("bus/password", broker.password.encode(), actor=Operator("admin:test"))
        finally:
            log.close()
    finally:
        deployment.close()


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _actions() -> list[str]:
    return [entry["action"] for entry in _entries()]


def test_plan_apply_publish_consume_and_the_dead_letter_desk(
    deployment_and_broker: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole operator and service path on a real broker, every step audited."""
    manifest = str(deployment_and_broker)
    status, out, err = _run(capsys, "messaging", "plan", "-m", manifest, "--json")
    assert status == 0, err
    assert {change["action"] for change in json.loads(out)["changes"]} == {"create"}
    status, out, err = _run(capsys, "messaging", "apply", "-m", manifest)
    assert status == 0, err
    status, out, err = _run(capsys, "messaging", "plan", "-m", manifest, "--json")
    assert {change["action"] for change in json.loads(out)["changes"]} == {"ok"}, out

    received: list[Message] = []
    calls = 0

    async def handle(message: Message) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            both.set()
        if message.payload["id"] == "not-an-order":
            raise MessageRejected("not an order")
        received.append(message)

    async def flow() -> None:
        async with producer("order-events", manifest=manifest) as out_:
            await out_.publish({"id": "A-1", "customer": {"email": "ada@example.com", "x": 1}})
            await out_.publish({"id": "not-an-order"})
        async with consumer("order-events", "crm-events", manifest=manifest) as inbox:
            running = await inbox.start(handle)
            await asyncio.wait_for(both.wait(), 20)
            await running.stop()  # lets the refusal reach the dead letters

    both = asyncio.Event()
    asyncio.run(flow())
    assert [m.payload for m in received] == [
        {"id": "A-1", "customer": {"email": "ada@example.com"}}
    ]

    status, out, err = _run(
        capsys, "messaging", "dlq", "list", "order-events", "-m", manifest, "--json"
    )
    assert status == 0, err
    (letter,) = json.loads(out)["dead_letters"]
    assert letter["reason"] == "handler"
    assert "not-an-order" not in out  # the list never shows a payload (ids are hex)
    status, out, err = _run(
        capsys, "messaging", "dlq", "show", "order-events", letter["ref"], "-m", manifest, "--json"
    )
    assert status == 0, err
    assert json.loads(out)["payload"] == {"id": "not-an-order"}
    status, out, err = _run(capsys, "messaging", "dlq", "purge", "order-events", "-m", manifest)
    assert status != 0  # needs --yes
    status, out, err = _run(
        capsys, "messaging", "dlq", "purge", "order-events", "--yes", "-m", manifest
    )
    assert status == 0, err
    assert "purged 1" in out

    actions = _actions()
    for action in (
        "admin.messaging.apply",
        "messaging.publish",
        "messaging.consume",
        "messaging.refuse",
        "messaging.dead_letter.list",
        "messaging.dead_letter.show",
        "messaging.dead_letter.purge",
    ):
        assert action in actions, action


def test_keys_list_rotate_and_jwks(
    deployment_and_broker: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Keys are listed, rotated for one party (audited) and published without private parts."""
    manifest = str(deployment_and_broker)
    status, out, err = _run(capsys, "messaging", "keys", "list", "-m", manifest, "--json")
    assert status == 0, err
    before = json.loads(out)["keys"]
    assert {(k["party"], k["use"]) for k in before} == {
        ("erp-events", "sig"),
        ("crm-events", "enc"),
    }
    status, out, err = _run(
        capsys,
        "messaging",
        "keys",
        "rotate",
        "order-events",
        "--party",
        "crm-events",
        "-m",
        manifest,
    )
    assert status == 0, err
    assert "published 1 key" in out
    status, out, err = _run(
        capsys, "messaging", "keys", "rotate", "order-events", "--party", "nobody", "-m", manifest
    )
    assert status != 0
    assert "neither the producer" in err
    status, out, err = _run(capsys, "messaging", "keys", "jwks", "order-events", "-m", manifest)
    keys = json.loads(out)["keys"]
    assert len(keys) == 3
    assert not any("d" in key for key in keys)
    assert "messaging.keys.rotate" in _actions()


def test_an_operator_without_the_role_is_refused(
    deployment_and_broker: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another OS user in operators: gets nothing from the dead letters, and it is recorded."""
    text = deployment_and_broker.read_text().replace(
        f"  {_operator()}: {{roles: [dlq-handler]}}",
        "  somebody-else: {roles: [dlq-handler]}",
    )
    deployment_and_broker.write_text(text)
    status, _, err = _run(
        capsys, "messaging", "dlq", "list", "order-events", "-m", str(deployment_and_broker)
    )
    assert status != 0
    assert "dlq-handler" in err
    assert "messaging.dead_letter.list" in _actions()


def test_an_error_against_nats_is_one_line_on_stderr(
    deployment_and_broker: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The TLS connection to NATS closes without asyncio's "returning true from
    eof_received()" warning: a refused command says one line, nothing else."""
    manifest = str(deployment_and_broker)
    status, _, err = _run(capsys, "messaging", "apply", "-m", manifest)
    assert status == 0, err
    status, _, err = _run(capsys, "messaging", "dlq", "show", "order-events", "999", "-m", manifest)
    assert status == 1
    assert err.strip().splitlines() == [
        "interlock: error[not_found]: no dead letter '999' in order-events's queue"
    ]


EVENT_STREAM = """\
  order-stream:
    type: event_streaming
    source: erp
    target: crm
    client: erp-events
    purpose: Order events for the CRM
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: P30D
    events:
      broker: bus
      destination: order-stream
      subjects:
        order.created: {field_categories: {customer.email: user.contact.email}}
      consumers:
        crm-events:
          order.created: {fields: [id, customer.email]}
      dead_letter: {role: dlq-handler}
"""


def test_plan_and_apply_cover_each_consumer_stream_of_an_event_integration(
    deployment_and_broker: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An event-streaming integration's per-consumer stream is declared like a messaging one."""
    text = (
        deployment_and_broker.read_text()
        .replace(
            "  dlq-handler: {scopes: [messaging.dead_letters]}\n",
            "  dlq-handler: {scopes: [messaging.dead_letters]}\n"
            "  order-reader: {scopes: [events.order.created.read]}\n",
        )
        .replace(
            "  crm-events: {auth: [mtls]}", "  crm-events: {auth: [mtls], roles: [order-reader]}"
        )
    )
    deployment_and_broker.write_text(text + EVENT_STREAM)
    manifest = str(deployment_and_broker)
    status, out, err = _run(capsys, "messaging", "plan", "order-stream", "-m", manifest, "--json")
    assert status == 0, err
    changes = json.loads(out)["changes"]
    assert {c["integration"] for c in changes} == {"order-stream"}
    assert any("ORDER-STREAM_CRM-EVENTS" in c["name"].upper().replace(".", "_") for c in changes)
    assert {c["action"] for c in changes} == {"create"}
    assert _run(capsys, "messaging", "apply", "order-stream", "-m", manifest)[0] == 0
    status, out, _ = _run(capsys, "messaging", "plan", "order-stream", "-m", manifest, "--json")
    assert {c["action"] for c in json.loads(out)["changes"]} == {"ok"}


def test_an_event_service_pair_on_the_host(
    deployment_and_broker: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Register a schema, declare the streams, publish through event_producer(): the consumer's
    event_consumer() gets its cut copy, and an invalid event never leaves the producer."""
    text = (
        deployment_and_broker.read_text()
        .replace(
            "  dlq-handler: {scopes: [messaging.dead_letters]}\n",
            "  dlq-handler: {scopes: [messaging.dead_letters]}\n"
            "  order-reader: {scopes: [events.order.created.read]}\n",
        )
        .replace(
            "  crm-events: {auth: [mtls]}", "  crm-events: {auth: [mtls], roles: [order-reader]}"
        )
    )
    deployment_and_broker.write_text(text + EVENT_STREAM)
    manifest = str(deployment_and_broker)
    schema = tmp_path / "order-created.json"
    schema.write_text(
        json.dumps(
            {
                "type": "object",
                "required": ["id", "customer"],
                "properties": {
                    "id": {"type": "string"},
                    "total": {"type": "number"},
                    "customer": {"type": "object", "properties": {"email": {"type": "string"}}},
                },
            }
        )
    )
    status, _, err = _run(
        capsys, "events", "schemas", "register", "order.created", str(schema), "-m", manifest
    )
    assert status == 0, err
    assert _run(capsys, "messaging", "apply", "order-stream", "-m", manifest)[0] == 0
    received: list[Event] = []

    async def handle(event: Event) -> None:
        received.append(event)

    async def flow() -> None:
        async with event_producer("order-stream", manifest=manifest) as out:
            with pytest.raises(EventRefused):
                await out.publish("order.created", {"id": 7})
            await out.publish(
                "order.created",
                {"id": "A-1", "total": 12.5, "customer": {"email": "ada@example.com"}},
            )
        async with event_consumer("order-stream", "crm-events", manifest=manifest) as inbox:
            running = await inbox.start(handle)
            async with asyncio.timeout(20):
                while not received:  # noqa: ASYNC110  (the handler's list is the signal)
                    await asyncio.sleep(0.05)
            await running.stop()

    asyncio.run(flow())
    (event,) = received
    assert event.payload == {"id": "A-1", "customer": {"email": "ada@example.com"}}
