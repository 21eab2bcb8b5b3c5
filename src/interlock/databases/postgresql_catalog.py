"""PostgreSQL's catalog as :class:`~interlock.databases.drift.Privilege` rows, and the plan's.

What the plan's login roles, the logins of removed consumers
(:meth:`~interlock.databases.plan.Plan.retired`) and the owner role hold
(attributes, table, column, schema, database and function grants, with a
grant option as its own row; memberships in both directions; what the logins
own), and what ``PUBLIC`` holds on the sources and views, table and column
level. Each grant keeps its grantor: a ``REVOKE`` removes only the grants of
the role running it, so :mod:`~interlock.databases.postgresql` revokes as each.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg

from interlock.databases.drift import Privilege
from interlock.databases.plan import Plan

__all__ = ["Grantors", "catalog", "expected_privileges", "found_privileges"]


_ATTRIBUTES: Final = (
    ("rolsuper", "SUPERUSER"),
    ("rolcreaterole", "CREATEROLE"),
    ("rolcreatedb", "CREATEDB"),
    ("rolreplication", "REPLICATION"),
    ("rolbypassrls", "BYPASSRLS"),
    ("rolinherit", "INHERIT"),
)

# Each grant with its grantor: a REVOKE removes only the grants of the role running it.
_RELATIONS: Final = """
SELECT n.nspname, c.relname, a.privilege_type, r.rolname, g.rolname, a.is_grantable
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
     aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee
     JOIN pg_roles g ON g.oid = a.grantor
WHERE r.rolname = ANY(%(roles)s)
"""
_COLUMNS: Final = """
SELECT n.nspname, c.relname, t.attname, a.privilege_type, r.rolname, g.rolname, a.is_grantable
FROM pg_attribute t JOIN pg_class c ON c.oid = t.attrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace,
     aclexplode(t.attacl) a JOIN pg_roles r ON r.oid = a.grantee
     JOIN pg_roles g ON g.oid = a.grantor
WHERE r.rolname = ANY(%(roles)s)
"""
_SCHEMAS: Final = """
SELECT n.nspname, a.privilege_type, r.rolname, g.rolname, a.is_grantable
FROM pg_namespace n, aclexplode(n.nspacl) a JOIN pg_roles r ON r.oid = a.grantee
     JOIN pg_roles g ON g.oid = a.grantor
WHERE r.rolname = ANY(%(roles)s)
"""
_DATABASES: Final = """
SELECT d.datname, a.privilege_type, r.rolname, g.rolname, a.is_grantable
FROM pg_database d, aclexplode(d.datacl) a JOIN pg_roles r ON r.oid = a.grantee
     JOIN pg_roles g ON g.oid = a.grantor
WHERE r.rolname = ANY(%(roles)s)
"""
_FUNCTIONS: Final = """
SELECT n.nspname, p.proname, a.privilege_type, r.rolname
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,
     aclexplode(p.proacl) a JOIN pg_roles r ON r.oid = a.grantee
WHERE r.rolname = ANY(%(roles)s)
"""
# Both directions: a plan role in another role, and another role in a plan role (it then
# acts as the owner or a login). The admin's own membership (PostgreSQL 16 gives a
# non-superuser creator one) is how it manages the roles.
_MEMBERSHIPS: Final = """
SELECT g.rolname, m.rolname FROM pg_auth_members am
JOIN pg_roles g ON g.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
WHERE m.rolname = ANY(%(roles)s)
   OR (g.rolname = ANY(%(roles)s) AND m.rolname <> current_user)
"""
_DEFAULTS: Final = """
SELECT o.rolname, d.defaclobjtype, coalesce(r.rolname, 'PUBLIC'), a.privilege_type
FROM pg_default_acl d JOIN pg_roles o ON o.oid = d.defaclrole,
     aclexplode(d.defaclacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
WHERE o.rolname = ANY(%(roles)s) OR r.rolname = ANY(%(roles)s)
"""
_OWNED: Final = """
SELECT n.nspname, c.relname, r.rolname FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_roles r ON r.oid = c.relowner
WHERE r.rolname = ANY(%(roles)s)
UNION ALL
SELECT n.nspname, NULL, r.rolname FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
WHERE r.rolname = ANY(%(roles)s)
UNION ALL
SELECT n.nspname, p.proname, r.rolname FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_roles r ON r.oid = p.proowner
WHERE r.rolname = ANY(%(roles)s)
UNION ALL
SELECT n.nspname, t.typname, r.rolname FROM pg_type t
JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_roles r ON r.oid = t.typowner
WHERE r.rolname = ANY(%(roles)s) AND t.typrelid = 0 AND t.typelem = 0
UNION ALL
SELECT d.datname, NULL, r.rolname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba
WHERE r.rolname = ANY(%(roles)s)
"""
_RETIRED: Final = """
SELECT rolname, rolcanlogin FROM pg_roles WHERE starts_with(rolname, %(prefix)s)
"""
_PUBLIC_ON: Final = """
SELECT n.nspname, c.relname, a.privilege_type, g.rolname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
     JOIN pg_roles g ON g.oid = a.grantor
WHERE a.grantee = 0 AND (n.nspname, c.relname) IN
      (SELECT * FROM unnest(%(schemas)s::text[], %(tables)s::text[]))
"""
_PUBLIC_COLUMNS: Final = """
SELECT n.nspname, c.relname, t.attname, a.privilege_type, g.rolname
FROM pg_attribute t JOIN pg_class c ON c.oid = t.attrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(t.attacl) a
     JOIN pg_roles g ON g.oid = a.grantor
WHERE a.grantee = 0 AND (n.nspname, c.relname) IN
      (SELECT * FROM unnest(%(schemas)s::text[], %(tables)s::text[]))
"""


def found_privileges(plan: Plan, connection: psycopg.Connection[Any]) -> list[Privilege]:
    """What the plan's login roles (and retired ones) hold, and what PUBLIC holds on its objects."""
    return catalog(plan, connection)[0]


Grantors = dict[Privilege, set[str]]


class _Found:
    """The privileges read so far, and the grantors of each grant."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.privileges: list[Privilege] = []
        self.grantors: Grantors = {}

    def granted(self, privilege: Privilege, grantor: str, grantable: bool = False) -> None:
        if privilege.role == grantor == self.owner:
            return  # the owner's own entry on what it owns (its views and schemas): implicit
        self.privileges.append(privilege)
        self.grantors.setdefault(privilege, set()).add(grantor)
        if grantable:  # the role may pass it on: REVOKE GRANT OPTION FOR ...
            option = f"GRANT OPTION FOR {privilege.privilege}"
            self.granted(Privilege(privilege.role, privilege.kind, option, privilege.on), grantor)


def catalog(plan: Plan, connection: psycopg.Connection[Any]) -> tuple[list[Privilege], Grantors]:
    """The privileges, and who granted each grant (``aclexplode``'s grantor)."""
    retired = [
        (name, can_login)
        for name, can_login in connection.execute(_RETIRED, {"prefix": f"{plan.prefix}_"})
        if plan.retired(name)
    ]
    logins = [n for c in plan.consumers for n in c.logins] + [n for n, _ in retired]
    # The owner's grants too: whoever acts as it (a member, a view's definition) holds them.
    roles = {"roles": [*logins, plan.owner]}
    found = _Found(plan.owner)
    found.privileges.extend(Privilege(n, "attribute", "LOGIN") for n, can in retired if can)
    _roles(connection, roles, logins, found.privileges)
    for schema, name, privilege, role, by, option in connection.execute(_RELATIONS, roles):
        found.granted(Privilege(role, "table", privilege, (schema, name)), by, option)
    for schema, name, column, privilege, role, by, option in connection.execute(_COLUMNS, roles):
        found.granted(Privilege(role, "column", privilege, (schema, name, column)), by, option)
    for schema, privilege, role, by, option in connection.execute(_SCHEMAS, roles):
        found.granted(Privilege(role, "schema", privilege, (schema,)), by, option)
    for database, privilege, role, by, option in connection.execute(_DATABASES, roles):
        found.granted(Privilege(role, "database", privilege, (database,)), by, option)
    schemas = [s for s, _ in plan.source_tables] + [
        c.schema for c in plan.consumers for _ in c.views
    ]
    tables = [t for _, t in plan.source_tables] + [v.name for c in plan.consumers for v in c.views]
    objects = {"schemas": schemas, "tables": tables}
    for schema, name, privilege, by in connection.execute(_PUBLIC_ON, objects):
        found.granted(Privilege("PUBLIC", "table", privilege, (schema, name)), by)
    for schema, name, column, privilege, by in connection.execute(_PUBLIC_COLUMNS, objects):
        found.granted(Privilege("PUBLIC", "column", privilege, (schema, name, column)), by)
    return found.privileges, found.grantors


def _roles(
    connection: psycopg.Connection[Any],
    roles: dict[str, list[str]],
    logins: list[str],
    found: list[Privilege],
) -> None:
    """Attributes, function grants, memberships, default privileges, what the logins own."""
    attributes = ", ".join(a for a, _ in _ATTRIBUTES)
    rows = connection.execute(
        f"SELECT rolname, {attributes} FROM pg_roles WHERE rolname = ANY(%(roles)s)",  # noqa: S608  (constant column names)
        roles,
    )
    for row in rows:
        for (_, label), value in zip(_ATTRIBUTES, row[1:], strict=True):
            if value:
                found.append(Privilege(row[0], "attribute", label))
    for schema, name, privilege, role in connection.execute(_FUNCTIONS, roles):
        found.append(Privilege(role, "function", privilege, (schema, name)))
    for group, member in connection.execute(_MEMBERSHIPS, roles):
        found.append(Privilege(member, "membership", group))
    for owner, kind, grantee, privilege in connection.execute(_DEFAULTS, roles):
        found.append(Privilege(owner, "default", f"{privilege} on new {kind} to {grantee}"))
    for schema, name, owner in connection.execute(_OWNED, {"roles": logins}):
        on = (schema,) if name is None else (schema, name)
        found.append(Privilege(owner, "owner", "OWNER", on))


def expected_privileges(plan: Plan) -> set[Privilege]:
    """What the plan grants the login roles and the owner role."""
    expected: set[Privilege] = set()
    owner = plan.owner
    for schema, table in plan.source_tables:
        expected.add(Privilege(owner, "schema", "USAGE", (schema,)))
        for consumer in plan.consumers:
            for view in consumer.views:
                if (view.source_schema, view.source_table) != (schema, table):
                    continue
                expected.update(
                    Privilege(owner, "column", "SELECT", (schema, table, c)) for c in view.columns
                )
                expected.update(
                    Privilege(owner, "column", "UPDATE", (schema, table, c)) for c in view.write
                )
    for consumer in plan.consumers:
        for login in consumer.logins:
            expected.add(Privilege(login, "database", "CONNECT", (plan.system.database,)))
            expected.add(Privilege(login, "schema", "USAGE", (consumer.schema,)))
            for view in consumer.views:
                expected.add(Privilege(login, "table", "SELECT", (consumer.schema, view.name)))
                expected.update(
                    Privilege(login, "column", "UPDATE", (consumer.schema, view.name, column))
                    for column in view.write
                )
    return expected
