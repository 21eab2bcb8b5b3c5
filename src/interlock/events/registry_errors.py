"""What the schema registry refuses, each with a stable code (Confluent's error code beside it).

The HTTP face (:mod:`interlock.gateway.schema_api`) answers each as an RFC 9457
problem that also carries Confluent's ``error_code`` and ``message``, so a
Confluent client understands it; the CLI prints ``error[code]: message``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from interlock.errors import InterlockError, InvalidRequestError, NotFoundError

if TYPE_CHECKING:
    from interlock.events.compatibility import Incompatibility

__all__ = [
    "IncompatibleSchema",
    "InvalidModeError",
    "InvalidSchemaError",
    "InvalidVersionError",
    "UnknownSchemaError",
    "UnknownSubjectError",
    "UnknownVersionError",
]


class UnknownSubjectError(NotFoundError):
    """The manifest does not declare the subject, or no version of it is registered."""

    code = "subject_not_found"
    confluent_code: ClassVar[int] = 40401


class UnknownVersionError(NotFoundError):
    """The subject has no such version."""

    code = "version_not_found"
    confluent_code: ClassVar[int] = 40402


class UnknownSchemaError(NotFoundError):
    """No schema has this id."""

    code = "schema_not_found"
    confluent_code: ClassVar[int] = 40403


class InvalidSchemaError(InvalidRequestError):
    """Not a usable JSON Schema 2020-12 document (or too large); the message says why."""

    code = "invalid_schema"
    confluent_code: ClassVar[int] = 42201


class InvalidVersionError(InvalidRequestError):
    """A version is a positive integer or ``latest``."""

    code = "invalid_version"
    confluent_code: ClassVar[int] = 42202


class InvalidModeError(InvalidRequestError):
    """Not one of the compatibility modes."""

    code = "invalid_mode"
    confluent_code: ClassVar[int] = 42203


class IncompatibleSchema(InterlockError):  # noqa: N818  (the name the interface promises)
    """The schema breaks the subject's compatibility mode; ``problems`` says every way it does."""

    code = "incompatible_schema"
    confluent_code: ClassVar[int] = 409

    def __init__(self, subject: str, mode: str, problems: Sequence[Incompatibility]) -> None:
        """``problems``: every incompatibility found (at least one)."""
        count = "1 incompatibility" if len(problems) == 1 else f"{len(problems)} incompatibilities"
        super().__init__(f"the schema is not {mode} compatible with subject {subject!r}: {count}")
        self.subject = subject
        self.mode = mode
        self.problems: list[Incompatibility] = list(problems)
