"""Grant drift: every privilege a server gives beyond what the plan grants.

A dialect module reads its catalog into :class:`Privilege` rows (the plan's
login and owner roles, the logins of consumers no longer in the manifest
(:meth:`~interlock.databases.plan.Plan.retired`, whose ``LOGIN`` is itself
drift), and ``PUBLIC`` on the objects the plan touches);
:func:`compare` keeps those the plan does not grant. Kinds: ``attribute``
(SUPERUSER, CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS, INHERIT, or a
MariaDB global privilege), ``membership`` (a role granted), ``table``,
``column``, ``schema`` (or MariaDB database), ``database``, ``function``,
``default`` (default privileges), ``owner`` (an object the role owns).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from interlock.databases.plan import Plan

__all__ = ["Drift", "Privilege", "compare"]


@dataclass(frozen=True)
class Privilege:
    """One privilege of one role: ``kind`` of grant, the privilege, and on what."""

    role: str
    kind: str
    privilege: str
    on: tuple[str, ...] = ()

    def describe(self) -> str:
        """``crm_a: SELECT on table sales.customers``."""
        where = f" on {self.kind} {'.'.join(self.on)}" if self.on else ""
        if self.kind == "attribute":
            return f"{self.role}: has {self.privilege}"
        if self.kind == "membership":
            return f"{self.role}: is a member of {self.privilege}"
        if self.kind == "default":
            return f"{self.role}: default privileges {self.privilege}"
        if self.kind == "owner":
            return f"{self.role}: owns {'.'.join(self.on)}"
        return f"{self.role}: {self.privilege}{where}"

    def as_json(self) -> dict[str, object]:
        """A JSON object for ``--json``."""
        return {
            "role": self.role,
            "kind": self.kind,
            "privilege": self.privilege,
            "on": list(self.on),
        }


@dataclass(frozen=True)
class Drift:
    """A privilege beyond the plan, why it matters, and (when known) the statement undoing it."""

    privilege: Privilege
    detail: str
    revoke: object | None = None


def _why(privilege: Privilege, plan: Plan) -> str:
    if privilege.role == "PUBLIC":
        return "every role of the server, the consumers included, holds it"
    if plan.retired(privilege.role):
        return "a login of a consumer the manifest no longer declares"
    if privilege.kind == "attribute":
        return "a role attribute the plan never gives"
    if privilege.kind == "membership":
        return "a role membership the plan never grants"
    if privilege.kind in {"table", "column"} and plan.login(privilege.role) is not None:
        return "a grant beyond the consumer's views"
    return "a privilege the plan does not grant"


def compare(plan: Plan, found: list[Privilege], expected: set[Privilege]) -> list[Drift]:
    """What ``found`` holds beyond ``expected``, in a stable order."""
    beyond = sorted(set(found) - expected, key=lambda p: (p.role, p.kind, p.on, p.privilege))
    return [Drift(p, f"{p.describe()} ({_why(p, plan)})") for p in beyond]
