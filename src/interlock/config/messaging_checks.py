"""Cross-references of a messaging integration: its broker, consumers, dead-letter role.

* errors — an unknown broker, consumer or dead-letter role; a consumer that is
  the producer (the integration's client); HTTP routes on a messaging
  integration; a ``fields`` allow-list or an encrypted field that the schema's
  top-level ``properties`` do not declare when the schema closes them
  (``additionalProperties: false``);
* warnings — a broker in another country than both ends of the flow (messages
  rest there: the register lists it among the places data is stored).

Findings are ``(path, message, is_error)`` for :mod:`interlock.config.checks`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from interlock.config.manifest import Integration
from interlock.config.yaml_source import DocPath

__all__ = ["messaging_findings"]

Found = tuple[DocPath, str, bool]


def messaging_findings(
    name: str,
    flow: Integration,
    *,
    has_routes: bool,
    undeclared: Callable[[str, str], bool],
    known: Callable[[str, str], str],
) -> Iterator[Found]:
    """Every cross-reference problem of integration ``name``'s ``messaging:`` section."""
    spec = flow.messaging
    if spec is None:
        return
    at: DocPath = ("integrations", name, "messaging")
    if has_routes:
        yield ("integrations", name, "routes"), "a messaging integration has no HTTP routes", True
    if undeclared("brokers", spec.broker):
        yield (
            (*at, "broker"),
            f"unknown broker {spec.broker!r}{known('brokers', spec.broker)}",
            True,
        )
    for index, consumer in enumerate(spec.consumers):
        if undeclared("clients", consumer):
            yield (
                (*at, "consumers", index),
                f"unknown client {consumer!r}{known('clients', consumer)}",
                True,
            )
        elif consumer == flow.client:
            yield (
                (*at, "consumers", index),
                f"{consumer!r} is the integration's client, its producer: a consumer is "
                "another service account (each side holds only its own keys)",
                True,
            )
    if undeclared("roles", spec.dead_letter.role):
        yield (
            (*at, "dead_letter", "role"),
            f"unknown role {spec.dead_letter.role!r}{known('roles', spec.dead_letter.role)}",
            True,
        )
    yield from _closed_schema(at, spec.schema_, spec.fields, spec.encrypted_fields)


def _closed_schema(
    at: DocPath,
    schema: dict[str, object] | None,
    fields: tuple[str, ...] | None,
    encrypted: tuple[str, ...],
) -> Iterator[Found]:
    """Fields named that a closed top-level schema could never carry."""
    if not isinstance(schema, dict) or schema.get("additionalProperties") is not False:
        return
    properties = schema.get("properties")
    declared = set(properties) if isinstance(properties, dict) else set()
    for key, paths in (("fields", fields or ()), ("field_categories", encrypted)):
        for path in paths:
            top = path.split(".", 1)[0].removesuffix("[]")
            if top not in declared:
                yield (
                    (*at, key),
                    f"{path!r} is not a property of the payload's schema, which allows no "
                    "other properties",
                    True,
                )
