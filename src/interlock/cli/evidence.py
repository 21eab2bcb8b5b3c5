"""Admin actions taken through the CLI go on the audit trail.

Every command that changes keys, secrets, certificates, clients, the keyring
or the audit log itself (and every export of audit data) is recorded once it
has run, as ``admin.<group>.<command>`` by ``admin:<operating-system user>``,
with its outcome and its command line (names, ids, durations and file
paths: no command takes a secret value as an argument — secrets are read from
standard input or files; :mod:`interlock.cli.arguments` refuses credentials
among the arguments, and the recorded line names an Interlock key or secret
by its id and masks any other credential). Reading commands are not recorded.

A command may add what it did (counts, serials, ids — never a secret) with
:func:`note_result`; those fields go into the entry's ``details`` next to the
command line, so the trail shows, for instance, exactly what a kill switch ended.

If the entry cannot be written, the command says so and exits 1: the action
happened, but it is not on record, and automation must notice.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Final

from interlock.actors import Operator
from interlock.cli.arguments import command_words, masked_arguments, without_global_options
from interlock.errors import InterlockError

if TYPE_CHECKING:
    from interlock.config.settings import Settings

# The audit entry, log and store (~1 s of imports) are loaded by record_admin_action,
# not by every command line that only asks admin_action whether it is recorded.

__all__ = [
    "RECORDED",
    "admin_action",
    "admin_actor",
    "note_refusal",
    "note_result",
    "record_admin_action",
]

# (group, command) -> recorded; a group alone for top-level commands.
RECORDED: Final = frozenset(
    {
        ("keys", "create"),
        ("keys", "rotate"),
        ("keys", "revoke"),
        ("clients", "create"),
        ("clients", "create-secret"),
        ("clients", "keygen"),
        ("clients", "rotate-secret"),
        ("clients", "revoke"),
        ("clients", "revoke-key"),
        ("clients", "revoke-secret"),
        ("signature-keys", "create"),
        ("signature-keys", "revoke"),
        ("secrets", "put"),
        ("secrets", "configure"),
        ("secrets", "delete"),
        ("secrets", "undelete"),
        ("secrets", "destroy"),
        ("secrets", "grant"),
        ("secrets", "revoke-grant"),
        ("secrets", "rotate"),
        ("keyring", "rotate"),
        ("keyring", "rewrap"),
        ("keyring", "export-version"),
        ("keyring", "import-version"),
        ("manifest", "apply"),
        ("oauth", "rotate-keys"),
        ("messaging", "apply"),
        ("pki", "init"),
        ("pki", "issue"),
        ("pki", "renew"),
        ("pki", "revoke"),
        ("pki", "import-root"),
        ("pki", "export-root"),
        ("pki", "renew-intermediate"),
        ("audit", "export"),
        ("audit", "prune"),
    }
)
Detail = str | int | bool
_noted: ContextVar[dict[str, Detail] | None] = ContextVar("interlock_admin_result", default=None)


_refused: ContextVar[str | None] = ContextVar("interlock_admin_refusal", default=None)


def note_refusal(line: str | None) -> None:
    """The error line the running command ended with (``error[code]: message``), as shown.

    It becomes the audit entry's ``reason``: a refused admin action is on the trail with
    why, not only as a failure. The line is the one printed (credentials already masked);
    the entry masks credential formats again. ``None`` forgets an earlier one.
    """
    _refused.set(line)


def note_result(**fields: Detail) -> None:
    """Add ``fields`` (what the running command did) to its audit entry's details."""
    noted = _noted.get()
    if noted is None:
        noted = {}
        _noted.set(noted)
    noted.update(fields)  # texts are cut to the entry's limit when it is recorded


def admin_action(args: Sequence[str]) -> tuple[str, str] | None:
    """``(action, command line)`` when ``args`` is a recorded command (global options dropped).

    The command line is as :func:`~interlock.cli.arguments.masked_arguments`
    gives it: an Interlock key or secret named by its id, other credentials masked.
    """
    command = command_words(args)
    if command is None or command not in RECORDED:
        return None
    kept = masked_arguments(without_global_options(args))
    return f"admin.{command[0]}.{command[1]}", " ".join(kept)


def admin_actor() -> Operator:
    """``admin:<operating-system user>``: who acts through the CLI, as the audit trail names it.

    The name is the effective user id's, from the password database: operators'
    roles (``operators:`` in the manifest) follow it, so it must not come from
    ``LOGNAME``/``USER`` (what ``getpass.getuser`` reads first), which whoever
    starts the command sets. A user id without an entry is named ``uid:<n>``.
    """
    uid = os.geteuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = f"uid:{uid}"
    return Operator(f"admin:{user}"[:200])


def record_admin_action(settings: Settings, args: Sequence[str], status: int) -> str | None:
    """Record the command ``args`` that ended with ``status``; an error message if that failed."""
    found = admin_action(args)
    if found is None:
        return None
    from interlock.audit.entry import MAX_DETAIL_TEXT, MAX_REASON_TEXT, AuditEntry, Outcome
    from interlock.audit.service import AuditLog
    from interlock.store import open_deployment

    action, command_line = found
    noted = _noted.get() or {}
    _noted.set(None)
    refusal = _refused.get() if status != 0 else None
    _refused.set(None)
    details = {
        name: value[:MAX_DETAIL_TEXT] if isinstance(value, str) else value
        for name, value in {**noted, "command": command_line}.items()
    }
    try:
        entry = AuditEntry(
            actor=admin_actor().label,
            action=action,
            outcome=Outcome(result="success" if status == 0 else "failure", status=status),
            details=details,
            reason=refusal[:MAX_REASON_TEXT] if refusal else None,
        )
    except ValueError as exc:  # pydantic's ValidationError: a noted field the entry refuses
        return f"{action} ran but is not on the audit trail: {_refusal(exc)}"
    try:
        deployment = open_deployment(settings)
        try:
            log = AuditLog.open(settings, deployment.keyring)
            try:
                log.sink.record(entry)
            finally:
                log.close()
        finally:
            deployment.close()
    except InterlockError as exc:
        return f"{action} ran but is not on the audit trail: {exc.message}"
    return None


def _refusal(error: ValueError) -> str:
    """What the entry model refused, in one line, without the refused value."""
    from pydantic import ValidationError

    if isinstance(error, ValidationError) and error.errors():
        first = error.errors()[0]
        return f"the entry's {'.'.join(map(str, first['loc']))}: {first['msg']}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__
