"""Credentials among a command's arguments: found before anything runs or is recorded.

A credential typed on a command line is already in the shell's history and the
process list; the CLI must not make that worse by echoing it in an error or
writing it into the append-only audit trail. Every argument is checked against
the registry of credential formats (:mod:`interlock.credentials`, which the
scanner and log redaction read too): checked matches are named by kind, and any
other credential shape is refused as well (a mistyped key is still mostly a
secret). No command takes a credential, with three exceptions that take one as
a way to *name* it and then act on its id alone: ``keys revoke`` and
``keys rotate`` (an API key) and ``clients revoke-secret`` (a client secret).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from interlock.credentials import credential_shapes, find_credentials, format_by_id
from interlock.credentials.keyformat import PREFIXES, parse_key
from interlock.errors import InvalidRequestError
from interlock.logs.redaction import REDACTED, redact_credentials

__all__ = [
    "NAMED_BY_CREDENTIAL",
    "CredentialArgumentError",
    "check_arguments",
    "command_words",
    "masked_arguments",
    "without_global_options",
]

# (group, command) -> the credential formats it takes as the name of what it acts on.
NAMED_BY_CREDENTIAL: Final = {
    ("keys", "revoke"): frozenset({"interlock-api-key"}),
    ("keys", "rotate"): frozenset({"interlock-api-key"}),
    # Client secrets issued before the ilcs_ prefix look like API keys.
    ("clients", "revoke-secret"): frozenset({"interlock-client-secret", "interlock-api-key"}),
}
_SHAPE: Final = "credential-shaped value"
_GLOBAL_WITH_VALUE: Final = frozenset({"--data-dir"})


def without_global_options(args: Sequence[str]) -> list[str]:
    """``args`` without the top-level options (``--data-dir DIR``, ``--debug``)."""
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _GLOBAL_WITH_VALUE:
            skip = True
        elif not arg.startswith("--data-dir=") and arg != "--debug":
            kept.append(arg)
    return kept


def command_words(args: Sequence[str]) -> tuple[str, str] | None:
    """``(group, command)`` of ``args`` (global options dropped), or ``None``."""
    words = [arg for arg in without_global_options(args)[:2] if not arg.startswith("-")]
    return (words[0], words[1]) if len(words) == 2 else None


class CredentialArgumentError(InvalidRequestError):
    """An argument holds a credential; the message names its position and kind, never it."""

    code = "credential_in_argument"


@dataclass(frozen=True)
class _Found:
    index: int  # in the arguments
    kind: str  # a scanner rule id, or _SHAPE
    whole: bool  # the argument is the credential and nothing else


def _found(args: Sequence[str]) -> list[_Found]:
    found: list[_Found] = []
    for index, arg in enumerate(args):
        matches = list(find_credentials(arg))
        if matches:
            found.extend(_Found(index, m.format.id, m.value == arg) for m in matches)
        elif next(credential_shapes(arg), None) is not None:
            # A mistyped key or secret: the command may name it as malformed, never quote it.
            mistyped = arg.startswith(PREFIXES) and " " not in arg
            found.append(_Found(index, _SHAPE, mistyped))
    return found


def check_arguments(args: Sequence[str]) -> None:
    """Raise :class:`CredentialArgumentError` unless every credential in ``args`` is allowed.

    Allowed: one whole argument of a format :data:`NAMED_BY_CREDENTIAL` gives the
    command (or a mistyped one: the command refuses it without quoting it). The
    message says which argument and what it looks like.
    """
    command = command_words(args)
    accepted = NAMED_BY_CREDENTIAL.get(command) if command else None
    found = _found(args)
    named = [f for f in found if accepted and f.whole and f.kind in accepted | {_SHAPE}]
    refused = [f for f in found if f not in named[:1]]
    if not refused:
        return
    first = refused[0]
    what = (
        "credential-shaped"
        if first.kind == _SHAPE
        else f"a credential: {format_by_id(first.kind).title}"
    )
    more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
    raise CredentialArgumentError(
        f"argument {first.index + 1} is {what}{more}. No command takes a credential on the "
        "command line (it stays in the shell history and the process list); secrets are read "
        "from standard input or files. Nothing ran and the value was neither shown nor "
        "recorded; if the credential is live, rotate it"
    )


def masked_arguments(args: Sequence[str]) -> list[str]:
    """``args`` as they may be recorded: an Interlock key or secret by its id, others masked."""
    masked: list[str] = []
    for arg in args:
        text = arg
        for match in find_credentials(arg):
            parsed = parse_key(match.value, PREFIXES)
            text = text.replace(match.value, parsed.key_id if parsed else REDACTED)
        masked.append(redact_credentials(text))
    return masked
