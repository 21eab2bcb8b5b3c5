"""The manifest's shared-database sections: database systems, and what each consumer may read.

``databases:`` (top level) names each database server once: its kind
(``postgresql`` or ``mariadb``), where it is, how Interlock reaches it over
TLS, and the administrator's credentials by ``secret://`` reference (a JSON
``{"username": ..., "password": ...}`` in the vault).

TLS: ``tls: verify-full`` (the default) verifies the server's certificate
against ``ca`` (``system`` or ``file:PATH``) *and* its host name. ``tls:
disable`` is accepted only for a server on the loopback interface
(``127.0.0.0/8``, ``::1``, ``localhost``) or a Unix socket (a ``host`` that is
an absolute path): there the traffic never crosses a network, and a
certificate would name nothing an attacker could impersonate. Anywhere else
the connection is verified or refused at load.

An integration of ``type: shared_database`` carries a ``database:`` section:
the system, and per consuming client (a manifest client) the views it gets,
each a projection of one source table: the columns it may read, each mapped
to its data category, an optional row filter, and the columns it may update.

A row filter is a small expression language, not SQL: comparisons of a
declared column with a literal (``= <> != < <= > >=``, ``IN (...)``, ``IS
[NOT] NULL``), joined by ``and``, ``or``, ``not`` and parentheses. It is
parsed at load into a tree (:class:`Filter`); the SQL is composed from the
tree by the database's driver (identifiers quoted, literals quoted by the
driver), so no text of the manifest reaches the server as SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Final, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from interlock.config.remote_tls import is_loopback
from interlock.config.units import Duration
from interlock.config.vocabulary import (
    DataCategory,
    Name,
    SecretRef,
    TrustAnchor,
    _Model,
    check_secret_reference,
    check_trust_anchor,
)
from interlock.config.yaml_source import DocPath

__all__ = [
    "IDENTIFIER_PATTERN",
    "SLOTS",
    "And",
    "Compare",
    "DatabaseSpec",
    "DatabaseSystem",
    "Filter",
    "InList",
    "IsNull",
    "Literal_",
    "Not",
    "Or",
    "ViewSpec",
    "consumer_base",
    "filter_columns",
    "is_loopback",
    "parse_filter",
    "role_prefix",
    "sql_name",
]

#: A database identifier Interlock writes: lower-case letters, digits and ``_``; at most 63
#: characters (PostgreSQL's limit; MariaDB allows 64). Quoted by the driver in any case.
IDENTIFIER_PATTERN: Final = r"^[a-z_][a-z0-9_]{0,62}$"
Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
# ``schema.table`` (PostgreSQL) or ``database.table`` (MariaDB).
QualifiedTable = Annotated[
    str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}$")
]
_HOST: Final = re.compile(r"^([A-Za-z0-9.-]{1,253}|\[?[0-9A-Fa-f:.]{2,45}\]?|/[^\x00\s]{1,200})$")
_MAX_FILTER: Final = 2000
_MAX_DEPTH: Final = 16
_MAX_TERMS: Final = 64
#: Each consumer's two login roles, ``<prefix>_<client>_a`` and ``_b`` (the rotation alternates).
SLOTS: Final = ("a", "b")


def sql_name(name: str) -> str:
    """A manifest name (``crm-sync``) as a database identifier part (``crm_sync``)."""
    return name.replace("-", "_")


class DatabaseSystem(_Model):
    """A database server integrations share: where it is, TLS, and the admin by reference."""

    kind: Literal["postgresql", "mariadb"] = Field(description="The database server's kind.")
    host: str = Field(
        description="A DNS name, an IP address, or a Unix socket directory.",
        examples=["db.internal.example"],
    )
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="The port (default: 5432 for PostgreSQL, 3306 for MariaDB).",
        examples=[5432],
    )
    database: Identifier = Field(
        description="The database holding the source tables.", examples=["crm"]
    )
    tls: Literal["verify-full", "disable"] = Field(
        default="verify-full",
        description=(
            "verify-full (certificate and host name), or disable, accepted only on "
            "loopback or a Unix socket."
        ),
    )
    ca: TrustAnchor | None = Field(
        default=None,
        description=(
            "With verify-full: system or file:PATH, the CA the server's certificate must chain to."
        ),
    )
    admin: SecretRef = Field(
        description=(
            'The administrator\'s {"username", "password"} (JSON) in the vault, as a '
            "secret:// reference; it creates the roles and views."
        )
    )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not _HOST.match(value):
            raise ValueError("host is a DNS name, an IP address or a Unix socket directory")
        return value

    @field_validator("admin")
    @classmethod
    def _by_reference(cls, value: str) -> str:
        check_secret_reference(value)  # ValueError unless a secret:// reference
        return value

    @field_validator("ca", mode="before")
    @classmethod
    def _trust_anchor(cls, value: object) -> object:
        if value is None:
            return None
        checked = check_trust_anchor(value)
        if isinstance(checked, str) and checked.startswith("pki:"):
            raise ValueError(
                "ca of a database is 'system' or 'file:PATH' (the CA that issued the "
                "database server's certificate)"
            )
        return checked

    @model_validator(mode="after")
    def _tls(self) -> DatabaseSystem:
        if self.tls == "disable" and not is_loopback(self.host):
            raise ValueError(
                f"tls: disable is refused for {self.host}: only a loopback address or a Unix "
                "socket may go without TLS; use tls: verify-full with the server's ca"
            )
        if self.tls == "verify-full" and self.ca is None:
            raise ValueError(
                "tls: verify-full needs ca (system or file:PATH): the CA the database "
                "server's certificate must chain to"
            )
        return self

    @property
    def default_port(self) -> int:
        """The port, or the kind's default."""
        return self.port or (5432 if self.kind == "postgresql" else 3306)


# -- row filters -------------------------------------------------------------------------

Literal_ = str | int | Decimal | bool


@dataclass(frozen=True)
class Compare:
    """``column op value``."""

    column: str
    op: Literal["=", "<>", "<", "<=", ">", ">="]
    value: Literal_


@dataclass(frozen=True)
class InList:
    """``column IN (values)``."""

    column: str
    values: tuple[Literal_, ...]


@dataclass(frozen=True)
class IsNull:
    """``column IS [NOT] NULL``."""

    column: str
    negated: bool


@dataclass(frozen=True)
class Not:
    """``NOT part``."""

    part: Filter


@dataclass(frozen=True)
class And:
    """``a AND b AND ...``."""

    parts: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    """``a OR b OR ...``."""

    parts: tuple[Filter, ...]


Filter = Compare | InList | IsNull | Not | And | Or

_TOKEN: Final = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\x00]|'')*')|(?P<number>-?[0-9]{1,18}(?:\.[0-9]{1,18})?(?![0-9A-Za-z_]))"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<op><=|>=|<>|!=|=|<|>)|(?P<punct>[(),]))"
)
_KEYWORDS: Final = frozenset({"and", "or", "not", "in", "is", "null", "true", "false"})


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if not text[position:].strip():
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ValueError(
                f"rows: unexpected {text[position:].strip()[:20]!r} at character {position + 1} "
                "(a filter compares declared columns with 'text', numbers, true or false)"
            )
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "word" and value.lower() in _KEYWORDS:
            kind, value = "keyword", value.lower()
        tokens.append((kind, value))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self._tokens = _tokens(text)
        self._at = 0
        self._terms = 0

    def parse(self) -> Filter:
        if not self._tokens:
            raise ValueError("rows: the filter is empty")
        tree = self._or(0)
        if self._at != len(self._tokens):
            raise ValueError(f"rows: unexpected {self._tokens[self._at][1]!r} after the filter")
        return tree

    def _peek(self) -> tuple[str, str] | None:
        return self._tokens[self._at] if self._at < len(self._tokens) else None

    def _take(self, kind: str, value: str | None = None) -> str:
        token = self._peek()
        if token is None or token[0] != kind or (value is not None and token[1] != value):
            got = "the end" if token is None else repr(token[1])
            raise ValueError(f"rows: expected {value or kind}, got {got}")
        self._at += 1
        return token[1]

    def _accept(self, kind: str, value: str) -> bool:
        if self._peek() == (kind, value):
            self._at += 1
            return True
        return False

    def _or(self, depth: int) -> Filter:
        if depth > _MAX_DEPTH:
            raise ValueError(f"rows: the filter nests deeper than {_MAX_DEPTH} levels")
        parts = [self._and(depth)]
        while self._accept("keyword", "or"):
            parts.append(self._and(depth))
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def _and(self, depth: int) -> Filter:
        parts = [self._factor(depth)]
        while self._accept("keyword", "and"):
            parts.append(self._factor(depth))
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def _factor(self, depth: int) -> Filter:
        if self._accept("keyword", "not"):
            return Not(self._factor(depth + 1))
        if self._accept("punct", "("):
            inner = self._or(depth + 1)
            self._take("punct", ")")
            return inner
        self._terms += 1
        if self._terms > _MAX_TERMS:
            raise ValueError(f"rows: more than {_MAX_TERMS} comparisons")
        column = self._take("word")
        if not re.match(IDENTIFIER_PATTERN, column):
            raise ValueError(f"rows: {column!r} is not a column name (lower case, digits, _)")
        if self._accept("keyword", "is"):
            negated = self._accept("keyword", "not")
            self._take("keyword", "null")
            return IsNull(column, negated)
        if self._accept("keyword", "in"):
            self._take("punct", "(")
            values = [self._literal()]
            while self._accept("punct", ","):
                values.append(self._literal())
            self._take("punct", ")")
            return InList(column, tuple(values))
        op = self._take("op")
        return Compare(column, "<>" if op == "!=" else op, self._literal())  # type: ignore[arg-type]

    def _literal(self) -> Literal_:
        token = self._peek()
        if token is None:
            raise ValueError("rows: expected a value, got the end")
        kind, value = token
        self._at += 1
        if kind == "string":
            return value[1:-1].replace("''", "'")
        if kind == "number":
            return Decimal(value) if "." in value else int(value)
        if kind == "keyword" and value in {"true", "false"}:
            return value == "true"
        raise ValueError(
            f"rows: expected a value ('text', a number, true or false), got {value!r} "
            "(a column is compared with a literal, never with another column or a function)"
        )


def parse_filter(text: str) -> Filter:
    """The row filter ``text`` as a tree; :class:`ValueError` naming what is wrong."""
    if len(text) > _MAX_FILTER:
        raise ValueError(f"rows: a filter is at most {_MAX_FILTER} characters")
    return _Parser(text).parse()


def filter_columns(tree: Filter) -> set[str]:
    """The columns a filter reads."""
    if isinstance(tree, Compare | InList | IsNull):
        return {tree.column}
    if isinstance(tree, Not):
        return filter_columns(tree.part)
    return set().union(*(filter_columns(part) for part in tree.parts))


# -- the integration's section ---------------------------------------------------------


class ViewSpec(_Model):
    """One view a consumer gets: a projection of one source table."""

    table: QualifiedTable = Field(
        description="The source table, schema.table (PostgreSQL) or database.table (MariaDB).",
        examples=["public.customers"],
    )
    columns: dict[Identifier, DataCategory] = Field(
        min_length=1,
        max_length=500,
        description="The columns the consumer may read, each with its data category.",
        examples=[{"id": "system.operations", "email": "user.contact.email"}],
    )
    rows: Annotated[str, StringConstraints(min_length=1, max_length=_MAX_FILTER)] | None = Field(
        default=None,
        description=(
            "A row filter: comparisons of declared columns with literals, joined by "
            "and, or, not (never SQL)."
        ),
        examples=["region = 'EU' and deleted_at is null"],
    )
    write: tuple[Identifier, ...] = Field(
        default=(),
        description=(
            "The columns the consumer may UPDATE through the view (rows outside the filter never)."
        ),
        examples=[["email"]],
    )

    @model_validator(mode="after")
    def _declared(self) -> ViewSpec:
        if self.rows is not None:
            unknown = filter_columns(parse_filter(self.rows)) - set(self.columns)
            if unknown:
                raise ValueError(
                    f"rows: the filter reads {', '.join(sorted(unknown))}, not among the "
                    "view's columns (a filter compares declared columns only)"
                )
        extra = [c for c in self.write if c not in self.columns]
        if extra:
            raise ValueError(f"write names {', '.join(extra)}, not among the view's columns")
        if len(set(self.write)) != len(self.write):
            raise ValueError("write names a column twice")
        return self

    @property
    def row_filter(self) -> Filter | None:
        """The parsed row filter (validated at load)."""
        return None if self.rows is None else parse_filter(self.rows)


class Consumer(_Model):
    """A consuming client's account: its limits and its views."""

    connection_limit: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Most concurrent connections of the consumer's account.",
    )
    statement_timeout: Duration = Field(
        default=timedelta(seconds=30), description="Longest statement (1s to 1h)."
    )
    from_host: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.%:_-]{1,60}$")] = Field(
        default="%", description="MariaDB: the host part of the account ('%' is any host)."
    )
    views: dict[Identifier, ViewSpec] = Field(
        min_length=1, max_length=200, description="The views the consumer gets, by name."
    )

    @field_validator("statement_timeout")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(hours=1):
            raise ValueError("statement_timeout is between 1s and 1h")
        return value


class DatabaseSpec(_Model):
    """A shared-database integration: the system and each consuming client's views."""

    system: Name = Field(description="The database server (a name under databases).")
    prefix: Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,30}$")] | None = Field(
        default=None,
        description=(
            "The prefix of the generated view schemas (databases on MariaDB) and "
            "roles; default: the integration's name."
        ),
        examples=["crm_sync"],
    )
    consumers: dict[Name, Consumer] = Field(
        min_length=1, max_length=50, description="Each consuming client and its account's views."
    )

    def generated_names(self, integration: str) -> Iterator[tuple[str, str, DocPath]]:
        """Every name this section uses on its server: ``(namespace, name, path)``.

        The namespace is ``role`` (login and owner roles; MariaDB accounts),
        ``schema`` (the consumers' view schemas; MariaDB databases) or
        ``source`` (a schema the views read, which no generated schema may
        be); the path is where the manifest decides the name (the prefix, a
        consumer, a view's table), below this section.
        """
        prefix = role_prefix(integration, self)
        decided: DocPath = ("prefix",) if self.prefix else ()
        yield "role", f"{prefix}_owner", decided
        for client, consumer in self.consumers.items():
            at: DocPath = ("consumers", client)
            base = consumer_base(prefix, client)
            yield "schema", base, at
            for slot in SLOTS:
                yield "role", f"{base}_{slot}", at
            for view_name, view in consumer.views.items():
                source = view.table.split(".", 1)[0]
                yield "source", source, (*at, "views", view_name, "table")


def role_prefix(integration: str, spec: DatabaseSpec) -> str:
    """The prefix of an integration's generated names: ``prefix:``, or its name."""
    return spec.prefix or sql_name(integration)


def consumer_base(prefix: str, client: str) -> str:
    """A consumer's view schema, and the stem of its two login roles: ``<prefix>_<client>``."""
    return f"{prefix}_{sql_name(client)}"
