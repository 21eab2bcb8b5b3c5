"""Cross-references of an event-streaming integration: broker, consumers, grants, roles.

* errors — a subject's field category the integration's ``data_categories``
  do not cover; an unknown broker, consumer or dead-letter role; the producer
  (the integration's client) listed as a consumer; HTTP routes; a grant of a
  subject the integration does not declare; a consumer that does not hold
  ``events.SUBJECT.read`` through its roles for a subject it is granted;
  across integrations, one subject declared with two compatibility modes
  (the registry keeps one mode per subject: :func:`mode_conflicts`);
* the scopes ``events.SUBJECT.read`` count as used by the grants (no
  least-privilege warning for them).

Findings are ``(path, message, is_error)`` for :mod:`interlock.config.checks`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from interlock.config.events import read_scope
from interlock.config.field_categories import covered
from interlock.config.manifest import Integration
from interlock.config.yaml_source import DocPath
from interlock.errors import did_you_mean

__all__ = ["event_scopes", "events_findings", "mode_conflicts"]

Found = tuple[DocPath, str, bool]


def event_scopes(flow: Integration) -> set[str]:
    """The scopes the integration's grants use (``events.SUBJECT.read``)."""
    if flow.events is None:
        return set()
    return {read_scope(s) for grants in flow.events.consumers.values() for s in grants}


def events_findings(
    name: str,
    flow: Integration,
    *,
    has_routes: bool,
    undeclared: Callable[[str, str], bool],
    known: Callable[[str, str], str],
    scopes_of: Callable[[str], frozenset[str] | None],
) -> Iterator[Found]:
    """Every cross-reference problem of integration ``name``'s ``events:`` section.

    ``scopes_of(client)`` is the scopes the client holds through its roles
    (None when its roles could not all be read: nothing is then reported).
    """
    spec = flow.events
    if spec is None:
        return
    at: DocPath = ("integrations", name, "events")
    if has_routes:
        yield (
            ("integrations", name, "routes"),
            "an event-streaming integration has no HTTP routes",
            True,
        )
    if undeclared("brokers", spec.broker):
        yield (
            (*at, "broker"),
            f"unknown broker {spec.broker!r}{known('brokers', spec.broker)}",
            True,
        )
    if undeclared("roles", spec.dead_letter.role):
        yield (
            (*at, "dead_letter", "role"),
            f"unknown role {spec.dead_letter.role!r}{known('roles', spec.dead_letter.role)}",
            True,
        )
    yield from _categories(name, flow)
    for consumer, grants in spec.consumers.items():
        where: DocPath = (*at, "consumers", consumer)
        if undeclared("clients", consumer):
            yield where, f"unknown client {consumer!r}{known('clients', consumer)}", True
            continue
        if consumer == flow.client:
            yield (
                where,
                f"{consumer!r} is the integration's client, its producer: a consumer is "
                "another service account",
                True,
            )
        held = scopes_of(consumer)
        for subject in grants:
            if subject not in spec.subjects:
                yield (
                    (*where, subject),
                    f"subject {subject!r} is not declared in events.subjects"
                    f"{_closest(subject, spec.subjects)}",
                    True,
                )
            elif held is not None and read_scope(subject) not in held:
                yield (
                    (*where, subject),
                    f"client {consumer!r} is granted {subject!r} here but holds no role with "
                    f"scope {read_scope(subject)}: grant it through a role (roles: ...)",
                    True,
                )


def mode_conflicts(flows: Mapping[str, Integration]) -> Iterator[Found]:
    """A subject declared again with another compatibility mode, at the later declaration.

    Several integrations may produce one subject, but the schema registry
    checks a subject under one mode; silently taking the first would let
    through changes another declaration promises to refuse.
    """
    first: dict[str, tuple[str, str]] = {}  # subject: (integration, mode)
    for name, flow in flows.items():
        if flow.events is None:
            continue
        for subject, spec in flow.events.subjects.items():
            seen = first.setdefault(subject, (name, spec.compatibility))
            if seen[1] != spec.compatibility:
                yield (
                    ("integrations", name, "events", "subjects", subject, "compatibility"),
                    f"subject {subject!r} is {spec.compatibility} here but {seen[1]} in "
                    f"integration {seen[0]}: a subject has one compatibility mode",
                    True,
                )


def _categories(name: str, flow: Integration) -> Iterator[Found]:
    """Subject fields tagged with a category the integration does not declare."""
    spec = flow.events
    if spec is None:  # events_findings passes only integrations with events
        return
    for subject_name, subject in spec.subjects.items():
        for path, category in subject.field_categories.items():
            if not covered(category, flow.data_categories):
                yield (
                    (
                        "integrations",
                        name,
                        "events",
                        "subjects",
                        subject_name,
                        "field_categories",
                        path,
                    ),
                    f"{path} is tagged {category}, which integration {name} does not declare "
                    "in data_categories: the Art. 30 register would not show it",
                    True,
                )


def _closest(subject: str, declared: Iterable[str]) -> str:
    """``; did you mean 'x'?``, or every declared subject when none is close."""
    declared = list(declared)
    return did_you_mean(subject, declared) or f" (declared: {', '.join(declared)})"
