"""Per-request cost against configuration size: 1 vs 10,000 API keys, 1 vs 1,000 routes.

Each figure runs the same look-up in a small and a large configuration, side
by side in the same run (interleaved passes, the best pass of each kept), and
reports small-time / large-time: 1.0 means the cost does not grow with the
configuration (target >= 0.9).

* ``keys-1e4-vs-1``: ``ApiKeys.verify_cached`` (the gateway's hot path: the
  key's row in memory, the secret checked against its peppered hash) of one
  key, in a store holding 1 key against one holding 10,000 keys (every one
  looked up once, so all 10,000 are in the cache), and ``ApiKeys.verify``
  (the row read from the store by its id) alike.
* ``routes-1e3-vs-1``: ``RouteTable.match`` of a request for the *last*
  route declared, in a manifest of 1 route against one of 1,000 routes of the
  same shape (``/systemN/orders/{id}``), the worst case for a scan.
* ``clients-1e3-vs-1``: the token endpoint's ``handle`` (client lookup,
  secret check, grants, ES256 signing) for one client, in a manifest of 1
  client against one of 1,000.
* ``messaging-integrations-1e3-vs-1``: a message's key look-ups
  (``MessagingKeys``: the producer's signer and the recipients to seal, the
  verification and decryption keys to open), with 1 messaging integration's
  keys in the store against 1,000 integrations' (3,000 keys).

Run: ``.venv/bin/python benchmarks/scaling/run.py``
"""

from __future__ import annotations

import base64
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in {None, ""}:  # run as a file: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import sandbox
from benchmarks.results import report
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.gateway.routing import RouteTable
from interlock.identity.apikeys import ApiKeys
from interlock.identity.client_secrets import ClientSecrets
from interlock.messaging.keys import MessagingKeys
from interlock.oauth.revocation import TokenRevocations
from interlock.oauth.revoked import RevokedTokens
from interlock.oauth.signing_keys import SigningKeys
from interlock.oauth.token_endpoint import TokenEndpoint
from interlock.oauth.tokens import AccessTokenVerifier, TokenIssuer

HEAD = """\
version: 1
organisation:
  controller: {name: Benchmark, contact: privacy@bench.test, country: DE}
roles:
  reader: {scopes: [orders.read]}
"""


def manifest_text(routes: int, clients: int) -> str:
    """``routes`` routes on as many systems, ``clients`` clients (the first is ``c0``)."""
    lines = [HEAD, "systems:"]
    lines += [
        f'  s{n}: {{url: "https://s{n}.bench.test", location: DE, ca: system}}'
        for n in range(routes)
    ]
    lines.append("clients:")
    lines += [f"  c{n}: {{auth: [api_key, oauth2], roles: [reader]}}" for n in range(clients)]
    lines.append("integrations:")
    for n in range(routes):  # a route may only reach its integration's systems
        lines += [
            f"  flow{n}:",
            f"    source: s{n}",
            f"    target: s{n}",
            "    client: c0",
            "    purpose: Benchmark",
            "    legal_basis: contract",
            "    retention: 1d",
            "    routes:",
            f'      - {{method: GET, path: "/s{n}/orders/{{id}}", upstream: s{n}, scope: orders.read}}',
        ]
    return "\n".join(lines) + "\n"


def load(work: Path, name: str, routes: int, clients: int) -> Manifest:
    """Write and load a manifest."""
    path = work / f"{name}.yaml"
    path.write_text(manifest_text(routes, clients))
    return load_manifest(path)


def best_pass(task: Callable[[], object], calls: int, seconds: float = 0.3) -> float:
    """µs per call of the fastest pass of ``task`` (``calls`` calls) within about ``seconds``."""
    best = float("inf")
    stop = time.perf_counter() + seconds
    while True:
        started = time.perf_counter()
        task()
        best = min(best, time.perf_counter() - started)
        if time.perf_counter() > stop:
            return best / calls * 1e6


def side_by_side(
    small: Callable[[], object], large: Callable[[], object], calls: int, repeat: int = 7
) -> tuple[float, float]:
    """Best µs per call of each, measured interleaved."""
    a, b = [], []
    for _ in range(repeat):
        a.append(best_pass(small, calls))
        b.append(best_pass(large, calls))
    return min(a), min(b)


def repeated(call: Callable[[], object], times: int) -> Callable[[], object]:
    """``call`` ``times`` times in a row."""

    def run() -> None:
        for _ in range(times):
            call()

    return run


def routes(work: Path) -> None:
    """Route matching, 1 vs 1,000 routes, request for the last route."""
    one = RouteTable.compile(load(work, "routes-1", 1, 1))
    many = RouteTable.compile(load(work, "routes-1000", 1000, 1))
    a = ("s0", "orders", "42")
    b = ("s999", "orders", "42")
    if not (one.match("GET", a).route.system_name == "s0"):
        raise SystemExit("a look-up gave the wrong answer; not measuring it")
    if not (many.match("GET", b).route.system_name == "s999"):
        raise SystemExit("a look-up gave the wrong answer; not measuring it")
    small, large = side_by_side(
        repeated(lambda: one.match("GET", a), 2000),
        repeated(lambda: many.match("GET", b), 2000),
        2000,
    )
    print(f"route match: 1 route {small:7.2f} µs   1,000 routes {large:7.2f} µs")
    report(
        "scaling",
        "routes-1e3-vs-1",
        small / large,
        target=0.9,
        peer="the same RouteTable.match with 1 route",
        note=f"1 route {small:.2f} µs, 1,000 routes {large:.2f} µs per match (the last route)",
    )


def keys(work: Path) -> None:
    """API key verification, 1 vs 10,000 keys in the store (and in the cache)."""
    with sandbox("interlock-scaling-one-") as one_box, sandbox("interlock-scaling-many-") as box:
        manifest = load(work, "keys", 1, 1)
        one = ApiKeys(
            one_box.deployment.engine, one_box.deployment.keyring, manifest, cache_seconds=3600
        )
        many = ApiKeys(box.deployment.engine, box.deployment.keyring, manifest, cache_seconds=3600)
        token_one = one.create("c0").token
        started = time.perf_counter()
        tokens = [many.create("c0").token for _ in range(10_000)]
        print(f"created 10,000 keys in {time.perf_counter() - started:.1f} s")
        for token in tokens:
            many.verify(token)  # every key in the cache, as on a busy gateway
        one.verify(token_one)
        token_many = tokens[len(tokens) // 2]
        if not (one.verify_cached(token_one) is not None):
            raise SystemExit("a look-up gave the wrong answer; not measuring it")
        if not (many.verify_cached(token_many) is not None):
            raise SystemExit("a look-up gave the wrong answer; not measuring it")
        small, large = side_by_side(
            repeated(lambda: one.verify_cached(token_one), 500),
            repeated(lambda: many.verify_cached(token_many), 500),
            500,
        )
        print(f"api key verify_cached: 1 key {small:7.2f} µs   10,000 keys {large:7.2f} µs")
        report(
            "scaling",
            "keys-1e4-vs-1",
            small / large,
            target=0.9,
            peer="the same ApiKeys.verify_cached with 1 key",
            note=f"1 key {small:.2f} µs, 10,000 keys {large:.2f} µs per verification (cached rows)",
        )
        one_cold = ApiKeys(
            one_box.deployment.engine, one_box.deployment.keyring, manifest, cache_seconds=0
        )
        many_cold = ApiKeys(
            box.deployment.engine, box.deployment.keyring, manifest, cache_seconds=0
        )
        small, large = side_by_side(
            repeated(lambda: one_cold.verify(token_one), 50),
            repeated(lambda: many_cold.verify(token_many), 50),
            50,
        )
        print(f"api key verify (store read): 1 key {small:7.2f} µs   10,000 keys {large:7.2f} µs")
        report(
            "scaling",
            "keys-1e4-vs-1-store",
            small / large,
            target=0.9,
            peer="the same ApiKeys.verify from the store with 1 key",
            note=f"1 key {small:.2f} µs, 10,000 keys {large:.2f} µs per verification (row read)",
        )


def clients(work: Path) -> None:
    """Token issuance, 1 vs 1,000 clients in the manifest."""
    issuer_url = "https://gateway.bench.test"
    with sandbox("interlock-scaling-clients-") as box:
        engine, keyring = box.deployment.engine, box.deployment.keyring
        keys_ = SigningKeys(engine, keyring, "ES256")
        keys_.ensure()

        def endpoint(manifest: Manifest) -> tuple[TokenEndpoint, str]:
            secrets = ClientSecrets(engine, keyring, manifest)
            issuer = TokenIssuer(keys_, issuer_url)
            verifier = AccessTokenVerifier(
                keys_, issuer_url, manifest, revoked=RevokedTokens(engine)
            )
            found = TokenEndpoint(
                secrets, issuer, TokenRevocations(verifier, RevokedTokens(engine))
            )
            return found, secrets.create("c0")[1]

        one, secret_one = endpoint(load(work, "clients-1", 1, 1))
        many, secret_many = endpoint(load(work, "clients-1000", 1, 1000))
        form = {"grant_type": ["client_credentials"]}

        def basic(secret: str) -> list[str]:
            return [f"Basic {base64.b64encode(f'c0:{secret}'.encode()).decode()}"]

        auth_one, auth_many = basic(secret_one), basic(secret_many)
        one.handle(auth_one, form)
        many.handle(auth_many, form)
        if not (one.handle_now(auth_one, form) is not None):
            raise SystemExit("a look-up gave the wrong answer; not measuring it")
        if not (many.handle_now(auth_many, form) is not None):
            raise SystemExit("a look-up gave the wrong answer; not measuring it")
        small, large = side_by_side(
            repeated(lambda: one.handle(auth_one, form), 100),
            repeated(lambda: many.handle(auth_many, form), 100),
            100,
        )
        print(f"token issuance: 1 client {small:7.2f} µs   1,000 clients {large:7.2f} µs")
        report(
            "scaling",
            "clients-1e3-vs-1",
            small / large,
            target=0.9,
            peer="the same TokenEndpoint.handle with 1 client",
            note=f"1 client {small:.2f} µs, 1,000 clients {large:.2f} µs per token",
        )


MESSAGING_FLOW = """\
  {name}:
    type: messaging
    source: erp
    target: crm
    client: producer
    purpose: Order events
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: P1D
    messaging: {{broker: bus, destination: {name}, consumers: [consumer], dead_letter: {{role: dlq}}}}
"""


def messaging_manifest(work: Path, integrations: int) -> Manifest:
    """``integrations`` messaging integrations on one broker (the first is measured)."""
    path = work / f"messaging-{integrations}.yaml"
    path.write_text(
        HEAD  # ends in the roles
        + "  dlq: {scopes: [messaging.dead_letters]}\n"
        + "systems:\n  erp: {url: 'https://erp.bench.test', location: DE}\n"
        + "  crm: {url: 'https://crm.bench.test', location: DE}\n"
        + "brokers:\n  bus: {kind: rabbitmq, url: 'amqps://broker.bench.test:5671/', location: DE}\n"
        + "clients:\n  producer: {auth: [mtls]}\n  consumer: {auth: [mtls]}\n"
        + "integrations:\n"
        + "".join(MESSAGING_FLOW.format(name=f"flow{n}") for n in range(integrations))
    )
    return load_manifest(path)


def messaging(work: Path) -> None:
    """A message's key look-ups (both ends), 1 vs 1,000 messaging integrations."""
    with sandbox("interlock-scaling-msg-one-") as one_box, sandbox("interlock-scaling-msg-") as box:
        one = MessagingKeys(one_box.deployment.engine, one_box.deployment.keyring)
        one.ensure(messaging_manifest(work, 1))
        many = MessagingKeys(box.deployment.engine, box.deployment.keyring)
        many.ensure(messaging_manifest(work, 1000))

        def per_message(keys: MessagingKeys) -> None:
            keys.signer("flow0", "producer")
            keys.recipients("flow0", ["consumer"])
            keys.verification_keys("flow0", "producer")
            keys.decryption_keys("flow0", "consumer")

        per_message(one)
        per_message(many)
        small, large = side_by_side(
            repeated(lambda: per_message(one), 200), repeated(lambda: per_message(many), 200), 200
        )
        print(f"messaging keys: 1 integration {small:7.2f} µs   1,000 integrations {large:7.2f} µs")
        report(
            "scaling",
            "messaging-integrations-1e3-vs-1",
            small / large,
            target=0.9,
            peer="the same MessagingKeys look-ups with 1 messaging integration",
            note=(
                f"1 integration {small:.2f} µs, 1,000 integrations {large:.2f} µs per message "
                "(signer and recipients to seal, verification and decryption keys to open)"
            ),
        )


def main() -> None:
    """Every figure."""
    with sandbox("interlock-scaling-") as box:
        routes(box.work)
        clients(box.work)
        keys(box.work)
        messaging(box.work)


if __name__ == "__main__":
    main()
