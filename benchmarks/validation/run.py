"""Validation cost per JSON request: ours vs ``jsonschema`` and vs ``jsonschema-rs`` alone, 2 KiB and 200 KiB.

The document is a purchase order generated here (seeded, so every run sees
the same bytes): a customer with an address, shipping, order lines with SKUs,
prices, tags and dates, and metadata. Its schema (2020-12) has nested
objects, arrays, ``required``, ``additionalProperties: false``, enums,
patterns, bounds and the formats ``uuid``, ``email``, ``date`` and
``date-time``. The 2 KiB document has a few lines; the 200 KiB one has many.

* ours: ``parse_json(body, JsonLimits())`` (strict UTF-8, duplicate keys,
  depth, string, number and member limits) then ``RequestSchema.violations``
  (jsonschema-rs, compiled once);
* the peer: ``json.loads(body)`` then ``list(validator.iter_errors(doc))``
  of a ``jsonschema.Draft202012Validator`` built once with the 2020-12 format
  checker. That checker skips ``date-time`` unless rfc3339-validator is
  installed, so the peer gets a ``datetime.fromisoformat`` check for it:
  both sides assert the same formats.
* the second peer, ``jsonschema-rs`` alone: ``json.loads(body)`` then
  ``list(validator.iter_errors(doc))`` of a ``jsonschema_rs.Draft202012Validator``
  built once (formats on, offline), the validator ours wraps. Most of the
  first ratio is Rust against pure Python; this one is Interlock's own
  overhead (strict parsing with limits, error reporting) over the bare
  library, target >= 0.5 (ours at most twice its cost).

All sides run in the same process on the same bytes, in alternating batches
of about 0.2 s each, with the garbage collector on (as in the gateway); the
per-request cost is the process CPU time of a batch divided by its calls, and
the median over the batches is reported. Before timing, both must
agree that the documents are valid and find problems at the same locations in
a broken one. Run: ``.venv/bin/python benchmarks/validation/run.py``.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import jsonschema
import jsonschema_rs

if __package__ in {None, ""}:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.results import report
from interlock.config.manifest import JsonLimits
from interlock.validation.errors import pointer
from interlock.validation.json_body import parse_json
from interlock.validation.schema import compile_schema

SIZES: Final = {"2kib": 2 * 1024, "200kib": 200 * 1024}
TARGET_VS_JSONSCHEMA: Final = 10.0
TARGET_VS_JSONSCHEMA_RS: Final = 0.5
BATCHES: Final = 15
BATCH_SECONDS: Final = 0.2

_ADDRESS: Final = {
    "type": "object",
    "required": ["street", "city", "postcode", "country"],
    "additionalProperties": False,
    "properties": {
        "street": {"type": "string", "minLength": 1, "maxLength": 200},
        "city": {"type": "string", "minLength": 1, "maxLength": 100},
        "postcode": {"type": "string", "pattern": "^[A-Z0-9 -]{3,10}$"},
        "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
    },
}
SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["order_id", "created_at", "currency", "customer", "lines"],
    "additionalProperties": False,
    "$defs": {"address": _ADDRESS},
    "properties": {
        "order_id": {"type": "string", "format": "uuid"},
        "created_at": {"type": "string", "format": "date-time"},
        "currency": {"enum": ["EUR", "USD", "GBP", "CHF", "SEK"]},
        "status": {"enum": ["draft", "submitted", "confirmed"]},
        "customer": {
            "type": "object",
            "required": ["id", "email", "name", "address"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "email": {"type": "string", "format": "email", "maxLength": 254},
                "name": {"type": "string", "minLength": 1, "maxLength": 200},
                "phone": {"type": "string", "pattern": "^\\+[0-9]{6,15}$"},
                "address": {"$ref": "#/$defs/address"},
            },
        },
        "shipping": {
            "type": "object",
            "required": ["method", "address"],
            "additionalProperties": False,
            "properties": {
                "method": {"enum": ["standard", "express", "pickup"]},
                "requested_date": {"type": "string", "format": "date"},
                "address": {"$ref": "#/$defs/address"},
            },
        },
        "lines": {
            "type": "array",
            "minItems": 1,
            "maxItems": 5000,
            "items": {
                "type": "object",
                "required": ["line_no", "sku", "quantity", "unit_price"],
                "additionalProperties": False,
                "properties": {
                    "line_no": {"type": "integer", "minimum": 1},
                    "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{6}$"},
                    "description": {"type": "string", "maxLength": 500},
                    "quantity": {"type": "integer", "minimum": 1, "maximum": 10000},
                    "unit_price": {"type": "number", "minimum": 0, "maximum": 1000000},
                    "discount": {"type": "number", "minimum": 0, "maximum": 1},
                    "delivery_date": {"type": "string", "format": "date"},
                    "tags": {
                        "type": "array",
                        "maxItems": 5,
                        "uniqueItems": True,
                        "items": {"enum": ["fragile", "gift", "bulk", "hazmat", "cold"]},
                    },
                },
            },
        },
        "notes": {"type": "string", "maxLength": 2000},
        "metadata": {
            "type": "object",
            "maxProperties": 20,
            "additionalProperties": {"type": "string", "maxLength": 200},
        },
    },
}


def _address(rng: random.Random) -> dict[str, str]:
    return {
        "street": f"{rng.randint(1, 400)} {rng.choice(['Main', 'Harbour', 'Mill', 'Station'])} Street",
        "city": rng.choice(["Hamburg", "Lyon", "Leeds", "Basel", "Malmo"]),
        "postcode": f"{rng.randint(10000, 99999)}",
        "country": rng.choice(["DE", "FR", "GB", "CH", "SE"]),
    }


def _line(rng: random.Random, number: int, day: datetime) -> dict[str, Any]:
    return {
        "line_no": number,
        "sku": f"{rng.choice(['ABC', 'KLM', 'XYZ'])}-{rng.randint(0, 999999):06d}",
        "description": rng.choice(["Steel bracket, galvanised", "Cable tie 200 mm", "Pump seal"]),
        "quantity": rng.randint(1, 500),
        "unit_price": round(rng.uniform(0.1, 900.0), 2),
        "discount": round(rng.uniform(0, 0.3), 2),
        "delivery_date": (day + timedelta(days=rng.randint(1, 60))).date().isoformat(),
        "tags": rng.sample(["fragile", "gift", "bulk", "hazmat", "cold"], rng.randint(0, 3)),
    }


def order(size: int) -> bytes:
    """An order document of about ``size`` bytes (the first line count that reaches it)."""
    rng = random.Random(7)  # noqa: S311  (seeded test data)
    day = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
    document: dict[str, Any] = {
        "order_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "created_at": day.isoformat(),
        "currency": "EUR",
        "status": "submitted",
        "customer": {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "email": "purchasing@example.com",
            "name": "Example Trading GmbH",
            "phone": "+4940123456",
            "address": _address(rng),
        },
        "shipping": {"method": "express", "requested_date": "2025-03-20", "address": _address(rng)},
        "lines": [],
        "notes": "Deliver to the loading dock at the back; call ahead.",
        "metadata": {"source": "erp", "batch": "2025-03-14-a"},
    }
    while True:
        body = json.dumps(document).encode()
        if len(body) >= size:
            return body
        document["lines"].append(_line(rng, len(document["lines"]) + 1, day))


def broken(body: bytes) -> bytes:
    """The document with a type confusion, a bad email, an unknown currency, a missing sku."""
    document = json.loads(body)
    document["lines"][0]["quantity"] = "5"
    document["customer"]["email"] = "not an email"
    document["currency"] = "DOGE"
    del document["lines"][-1]["sku"]
    document["shipping"]["requested_date"] = "2025-02-30"
    return json.dumps(document).encode()


def _datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return "T" in value.upper()


def peer() -> Callable[[bytes], list[Any]]:
    """``json.loads`` and jsonschema's 2020-12 validator, built once."""
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    checker = jsonschema.FormatChecker(formats=checker.checkers)
    checker.checks("date-time")(_datetime)
    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=checker)

    def validate(body: bytes) -> list[Any]:
        return list(validator.iter_errors(json.loads(body)))

    return validate


def rust_peer() -> Callable[[bytes], list[Any]]:
    """``json.loads`` and jsonschema-rs's 2020-12 validator alone, built once."""
    validator = jsonschema_rs.Draft202012Validator(SCHEMA, validate_formats=True, offline=True)

    def validate(body: bytes) -> list[Any]:
        return list(validator.iter_errors(json.loads(body)))

    return validate


def ours() -> Callable[[bytes], tuple[Any, ...]]:
    """``parse_json`` and our compiled schema."""
    limits = JsonLimits()
    schema = compile_schema(SCHEMA)

    def validate(body: bytes) -> tuple[Any, ...]:
        return schema.violations(parse_json(body, limits))

    return validate


def check_agreement(body: bytes, *peers: Callable[[bytes], list[Any]]) -> str:
    """All valid on the document; the same problem locations on the broken one."""
    schema = compile_schema(SCHEMA)
    mine = schema.violations(parse_json(body, JsonLimits()))
    if mine or any(theirs(body) for theirs in peers):
        raise SystemExit(f"the {len(body)}-byte document should be valid to every side")
    bad = broken(body)
    mine = schema.violations(parse_json(bad, JsonLimits()))
    my_places = {violation.pointer for violation in mine}
    for theirs in peers:
        their_places = {
            pointer(*getattr(error, "absolute_path", None) or getattr(error, "instance_path", ()))
            for error in theirs(bad)
        }
        if not mine or my_places != their_places:
            raise SystemExit(f"disagreement on the broken document: {my_places} vs {their_places}")
    return f"all accept it; all refuse the broken copy at {', '.join(sorted(my_places))}"


def per_call(validate: Callable[[bytes], object], body: bytes, calls: int) -> float:
    """CPU seconds per call over ``calls`` calls.

    Process time: other load on the machine does not count, the garbage
    collector's work does.
    """
    start = time.process_time()
    for _ in range(calls):
        validate(body)
    return (time.process_time() - start) / calls


def measure(body: bytes) -> dict[str, float]:
    """Median µs per request of each side, batches alternating."""
    sides = {"ours": ours(), "jsonschema": peer(), "jsonschema-rs": rust_peer()}
    print(
        f"{len(body):,} bytes: {check_agreement(body, sides['jsonschema'], sides['jsonschema-rs'])}"
    )
    calls = {side: max(1, int(BATCH_SECONDS / per_call(fn, body, 3))) for side, fn in sides.items()}
    timings: dict[str, list[float]] = {side: [] for side in sides}
    for _ in range(BATCHES):
        for side, fn in sides.items():
            timings[side].append(per_call(fn, body, calls[side]) * 1e6)
    return {side: statistics.median(values) for side, values in timings.items()}


def main() -> None:
    """Measure both sizes; end with the ratio lines."""
    versions = {name: metadata.version(name) for name in ("jsonschema", "jsonschema-rs")}
    for size_name, size in SIZES.items():
        body = order(size)
        us = measure(body)
        print(
            f"{size_name}: {len(body):,} bytes  ours {us['ours']:10.1f} µs/request  "
            f"jsonschema {us['jsonschema']:10.1f} µs/request  "
            f"jsonschema-rs alone {us['jsonschema-rs']:10.1f} µs/request"
        )
        report(
            "validation",
            f"validation-{size_name}-vs-jsonschema",
            us["jsonschema"] / us["ours"],
            target=TARGET_VS_JSONSCHEMA,
            peer=f"json.loads + jsonschema {versions['jsonschema']} Draft202012Validator, "
            "format checker, iter_errors",
            digits=1,
            note="mostly Rust (jsonschema-rs inside ours) against pure Python",
        )
        report(
            "validation",
            f"validation-{size_name}-vs-jsonschema-rs",
            us["jsonschema-rs"] / us["ours"],
            target=TARGET_VS_JSONSCHEMA_RS,
            peer=f"json.loads + jsonschema-rs {versions['jsonschema-rs']} Draft202012Validator "
            "alone, formats on, iter_errors",
            note="Interlock's overhead over the library it wraps",
        )


if __name__ == "__main__":
    main()
