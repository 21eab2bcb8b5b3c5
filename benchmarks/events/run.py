"""Validation plus per-consumer filtering of a 1 KiB event, against ``jsonschema`` validation alone.

What each side does per event, on the same parsed event (a seeded order of
about 1 KiB as JSON) and the same JSON Schema (2020-12: nested objects,
arrays, required, enums, bounds, patterns, ``additionalProperties: false``):

* **ours** — what the producer does before anything reaches the broker:
  validate the event against the subject's schema (jsonschema-rs, compiled
  once, the registry's validator) and, for each of three consumers, the
  content filter and the field cut of its grant
  (:class:`interlock.events.grants.Grant`);
* **the peer** — ``jsonschema.Draft202012Validator(schema).is_valid(event)``
  alone, built once: validation only, no filtering.

The peer does less work; the ratio is ours over the peer's events per second
(target >= 5: validation and filtering together at five times the speed of
validation alone in pure Python). Both run in this process, alternating
batches of about 0.2 s, CPU time per batch, median over batches; before
timing, both must agree on a valid and an invalid event.

Run: ``.venv/bin/python benchmarks/events/run.py [--seconds 3]``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema

if __package__ in {None, ""}:  # run as a file: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.results import report
from interlock.config.events import ConsumerGrant, EventSubject
from interlock.events.grants import Grant
from interlock.validation.schema import compile_schema

TARGET = 5.0
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "region", "customer", "lines", "total"],
    "properties": {
        "id": {"type": "string", "pattern": "^A-[0-9]+$"},
        "region": {"enum": ["EU", "US", "APAC"]},
        "total": {"type": "number", "minimum": 0},
        "customer": {
            "type": "object",
            "required": ["id", "email"],
            "properties": {
                "id": {"type": "string"},
                "email": {"type": "string", "maxLength": 254},
                "name": {"type": "string"},
            },
        },
        "lines": {
            "type": "array",
            "maxItems": 100,
            "items": {
                "type": "object",
                "required": ["sku", "quantity", "price"],
                "additionalProperties": False,
                "properties": {
                    "sku": {"type": "string"},
                    "quantity": {"type": "integer", "minimum": 1},
                    "price": {"type": "number", "minimum": 0},
                },
            },
        },
        "note": {"type": "string"},
    },
}
SUBJECT = EventSubject(field_categories={"customer.email": "user.contact.email"})
CRM = ConsumerGrant(fields=("id", "customer.email"), filter={"region": "EU"})
GRANTS = (
    Grant.of("crm", "order.created", CRM, SUBJECT),
    Grant.of(
        "analytics", "order.created", ConsumerGrant(fields=("id", "total", "region")), SUBJECT
    ),
    Grant.of("warehouse", "order.created", ConsumerGrant(fields=("id", "lines[].sku")), SUBJECT),
)


def event(seed: int) -> dict[str, Any]:
    """An order of about 1 KiB as JSON."""
    rng = random.Random(seed)  # noqa: S311  (seeded test data)
    lines = [
        {"sku": f"SKU-{rng.randrange(10**6)}", "quantity": rng.randint(1, 9), "price": 19.9}
        for _ in range(14)
    ]
    return {
        "id": f"A-{seed}",
        "region": rng.choice(["EU", "US", "APAC"]),
        "total": round(sum(line["quantity"] * line["price"] for line in lines), 2),
        "customer": {"id": f"C-{seed % 97}", "email": f"buyer{seed % 97}@example.com"},
        "lines": lines,
        "note": "x" * 120,
    }


def main() -> None:
    """Agree first, then time alternating batches."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per side")
    args = parser.parse_args()

    ours_schema = compile_schema(SCHEMA)
    peer = jsonschema.Draft202012Validator(SCHEMA)
    events = [event(n) for n in range(64)]
    invalid = {**events[0], "total": -1}
    if not all(not ours_schema.violations(e) and peer.is_valid(e) for e in events):
        raise SystemExit("the events should be valid to both sides")
    if not ours_schema.violations(invalid) or peer.is_valid(invalid):
        raise SystemExit("both sides should refuse the invalid event")

    def ours(item: dict[str, Any]) -> None:
        if ours_schema.violations(item):
            raise SystemExit("valid events only")
        for grant in GRANTS:
            if grant.matches(item):
                grant.cut(item)

    def theirs(item: dict[str, Any]) -> None:
        if not peer.is_valid(item):
            raise SystemExit("valid events only")

    size = len(json.dumps(events[0]))
    print(f"event of {size} bytes, {len(GRANTS)} consumer grants")
    rates: dict[str, list[float]] = {"ours": [], "peer": []}
    deadline = time.monotonic() + 2 * args.seconds
    while time.monotonic() < deadline:
        for name, work in (("ours", ours), ("peer", theirs)):
            rates[name].append(_batch(work, events))
    ours_rate = statistics.median(rates["ours"])
    peer_rate = statistics.median(rates["peer"])
    print(f"ours (validate + filter + cut x{len(GRANTS)}): {ours_rate:10.0f} events/s")
    print(f"jsonschema (validate only):          {peer_rate:10.0f} events/s")
    report(
        "events",
        "events-validate-filter-vs-jsonschema",
        ours_rate / peer_rate,
        target=TARGET,
        peer="jsonschema Draft202012Validator.is_valid, validation only (no filtering)",
        note=f"ours also filters and cuts for {len(GRANTS)} consumers; CPU time per batch",
    )


def _batch(work: Callable[[dict[str, Any]], None], events: list[dict[str, Any]]) -> float:
    """Events per CPU second over a batch of about 0.2 s."""
    done = 0
    began = time.process_time()
    while time.process_time() - began < 0.2:
        for item in events:
            work(item)
        done += len(events)
    return done / (time.process_time() - began)


if __name__ == "__main__":
    main()
