"""``GET /v1/messaging/{integration}/jwks.json``: the public keys of a messaging integration."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from interlock.config.manifest import Integration, Manifest
from interlock.config.messaging import Broker
from interlock.testing.gateway import Env


def _with_messaging(manifest: Manifest) -> Manifest:
    """The test gateway's manifest plus a broker and a messaging integration (erp -> erp)."""
    system = next(iter(manifest.systems))
    client = next(iter(manifest.clients))
    consumer = list(manifest.clients)[1]
    flow = Integration.model_validate(
        {
            "type": "messaging",
            "source": system,
            "target": system,
            "client": client,
            "purpose": "Events for the key publication test",
            "legal_basis": "contract",
            "retention": "P1D",
            "messaging": {
                "broker": "bus",
                "destination": "events",
                "consumers": [consumer],
                "dead_letter": {"role": "dlq"},
            },
        }
    )
    broker = Broker.model_validate(
        {"kind": "nats", "url": "tls://nats.internal:4222", "location": "DE"}
    )
    return manifest.model_copy(
        update={
            "integrations": {**manifest.integrations, "events": flow},
            "brokers": {"bus": broker},
        }
    )


@pytest.fixture
def messaging(env: Env) -> Iterator[tuple[str, str]]:
    """The shared gateway serving the manifest with a messaging integration; restored after."""
    running = env.gateway
    manifest = running.gateway.manifest
    extended = _with_messaging(manifest)
    running.replace(extended)
    try:
        flow = extended.integrations["events"]
        assert flow.messaging is not None
        yield flow.client, flow.messaging.consumers[0]
    finally:
        running.replace(manifest)


def test_the_integration_keys_are_published_without_private_parts(
    env: Env, messaging: tuple[str, str]
) -> None:
    """The producer's signing key and the consumer's encryption key, public halves only."""
    producer, consumer = messaging
    status, headers, body = env.request("GET", "/v1/messaging/events/jwks.json")
    assert status == 200, body
    assert headers["content-type"].startswith("application/jwk-set+json")
    keys = body["keys"]
    assert {(k["interlock_party"], k["use"]) for k in keys} == {
        (producer, "sig"),
        (consumer, "enc"),
    }
    assert not any("d" in key for key in keys)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/messaging/nothing/jwks.json",
        "/v1/messaging/events/keys",
        "/v1/messaging/events/jwks.json/more",
        "/v1/messaging",
    ],
)
def test_anything_else_under_the_prefix_is_not_found(
    env: Env, messaging: tuple[str, str], path: str
) -> None:
    """Unknown integrations and other paths are a 404 problem, naming nothing."""
    status, headers, _ = env.request("GET", path)
    assert status == 404
    assert headers["content-type"].startswith("application/problem+json")
