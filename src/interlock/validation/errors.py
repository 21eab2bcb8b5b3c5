"""What validation reports: a refusal with a status, and every violation it found.

A refusal becomes an RFC 9457 problem at the gateway: ``status``, ``code``
(the problem type), ``title``, ``detail`` and, when there are any, an
``errors`` member listing each :class:`Violation` as RFC 9457 §3's example
does (``{"detail": ..., "pointer": "#/quantity"}``). Details name the field
and the rule that failed — never internal paths, stack frames, SQL or
upstream text, and never more than :data:`MAX_ECHO` characters of the input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

__all__ = ["MAX_ECHO", "MAX_VIOLATIONS", "BodyRefused", "Violation", "echo", "pointer"]

MAX_ECHO: Final = 40
MAX_VIOLATIONS: Final = 100  # reported at once; more are counted, not listed


@dataclass(frozen=True)
class Violation:
    """One thing wrong with a request, located by exactly one of the three locators."""

    detail: str
    pointer: str | None = None  # RFC 6901 JSON pointer as a URI fragment: "#/lines/0/qty"
    parameter: str | None = None  # a path or query parameter's name
    rule: str | None = None  # a business rule's name

    def as_json(self) -> dict[str, str]:
        """The problem document's form: ``detail`` plus the locators that are set."""
        document = {"detail": self.detail}
        for name in ("pointer", "parameter", "rule"):
            value = getattr(self, name)
            if value is not None:
                document[name] = value
        return document


@dataclass
class BodyRefused(Exception):  # noqa: N818  (a refusal of the request, not a fault)
    """The request is refused: 400, 413, 415 or 422, with every violation found."""

    status: int
    code: str
    title: str
    detail: str
    violations: tuple[Violation, ...] = field(default=())

    def __post_init__(self) -> None:
        super().__init__(self.detail)


def pointer(*parts: str | int) -> str:
    """A JSON pointer fragment for ``parts`` (RFC 6901 escaping of ``~`` and ``/``)."""
    escaped = (str(part).replace("~", "~0").replace("/", "~1") for part in parts)
    return "#/" + "/".join(escaped) if parts else "#"


def echo(value: object) -> str:
    """At most :data:`MAX_ECHO` characters of an input value, for a detail message."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_ECHO else text[: MAX_ECHO - 1] + "…"
