"""What validation reports: a refusal with a code, and every violation it found.

A refusal becomes an RFC 9457 problem at the gateway: the ``code`` is the
problem type (its status and title come from the gateway's one table), the
``detail`` is said, and, when there are any, an
``errors`` member listing each :class:`Violation` as RFC 9457 §3's example
does (``{"detail": ..., "pointer": "#/quantity"}``). Details name the field
and the rule that failed — never internal paths, stack frames, SQL or
upstream text, and never more than :data:`MAX_ECHO` characters of the input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from interlock.errors import Refusal

__all__ = ["MAX_ECHO", "MAX_VIOLATIONS", "BodyRefused", "Violation", "echo", "pointer"]

MAX_ECHO: Final = 40
MAX_VIOLATIONS: Final = 100  # reported at once; more are counted, not listed


@dataclass(frozen=True)
class Violation:
    """One thing wrong with a request: where (pointer or parameter), and which rule found it."""

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


class BodyRefused(Refusal):
    """The request is refused for what it carries, with every violation found.

    ``code`` decides the status (400, 413, 415 or 422) through the gateway's
    table; the violations become the problem's ``errors`` member.
    """

    def __init__(
        self,
        code: str,
        detail: str,
        violations: tuple[Violation, ...] = (),
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        extra = {"errors": [v.as_json() for v in violations]} if violations else None
        super().__init__(
            code, detail, headers=headers, extra=extra, log_reason=f"validation {code}"
        )
        self.violations = violations


def pointer(*parts: str | int) -> str:
    """A JSON pointer fragment for ``parts`` (RFC 6901 escaping of ``~`` and ``/``)."""
    escaped = (str(part).replace("~", "~0").replace("/", "~1") for part in parts)
    return "#/" + "/".join(escaped) if parts else "#"


def echo(value: object) -> str:
    """At most :data:`MAX_ECHO` characters of an input value, for a detail message."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_ECHO else text[: MAX_ECHO - 1] + "…"
