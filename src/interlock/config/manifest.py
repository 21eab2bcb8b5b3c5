"""The manifest's typed model: systems, roles, clients, integrations and routes.

Field-level rules live here (shapes, allowed values, ``https://`` only, TLS 1.2
minimum, secrets by reference); rules that relate one entity to another
(unknown names, duplicate routes, least privilege) live in
:mod:`interlock.config.checks`. Every model is frozen and refuses unknown keys.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from interlock.config.databases import DatabaseSpec, DatabaseSystem
from interlock.config.events import EventsSpec
from interlock.config.files import FilesSpec, Partner
from interlock.config.header_names import check_header_name
from interlock.config.messaging import Broker, MessagingSpec
from interlock.config.units import ByteSize, Duration, RateValue
from interlock.config.vocabulary import (
    _SECRET_REF,
    CATEGORY_PATTERN,
    COUNTRY_PATTERN,
    FIELD_PATTERN,
    NAME_PATTERN,
    OPERATOR_NAME_PATTERN,
    PATTERN_HELP,
    RULE_NAME_PATTERN,
    SCOPE_PATTERN,
    SUBJECT_PATTERN,
    Country,
    DataCategory,
    DataSubject,
    FieldPath,
    MediaType,
    Name,
    QueryName,
    RuleName,
    Scope,
    Text,
    TlsPolicy,
    _Model,
    check_secret_reference,
    check_trust_anchor,
)
from interlock.gdpr.adequacy import adequacy_decision

__all__ = [
    "CATEGORY_PATTERN",
    "COUNTRY_PATTERN",
    "DEFAULT_PARAM",
    "FIELD_PATTERN",
    "GATEWAY_SCOPES",
    "NAME_PATTERN",
    "OPERATOR_NAME_PATTERN",
    "OPERATOR_SCOPES",
    "PATTERN_HELP",
    "RESERVED_PATHS",
    "RULES_ENTRY_POINTS",
    "RULE_NAME_PATTERN",
    "SCOPE_PATTERN",
    "SUBJECT_KIND_PATTERN",
    "SUBJECT_PATTERN",
    "AuthMethod",
    "Client",
    "CsvPolicy",
    "Integration",
    "IntegrationType",
    "JsonLimits",
    "LegalBasis",
    "Manifest",
    "Method",
    "Name",
    "OperatorAccount",
    "OperatorName",
    "Organisation",
    "ParamSpec",
    "Party",
    "RateLimits",
    "ReplayPolicy",
    "Role",
    "Route",
    "Safeguard",
    "Scope",
    "SpecialCategoryCondition",
    "SqlConnector",
    "SqlRule",
    "SubjectLocator",
    "System",
    "SystemPrivacy",
    "TlsPolicy",
    "Transfer",
    "TrustedIssuer",
    "WebhookConnector",
    "XmlPolicy",
    "media_kind",
    "template_params",
    "template_shape",
]

OperatorName = Annotated[str, StringConstraints(pattern=OPERATOR_NAME_PATTERN)]
ForwardHeader = Annotated[str, AfterValidator(lambda name: check_header_name(name, "forward"))]
ReturnHeader = Annotated[str, AfterValidator(lambda name: check_header_name(name, "return"))]

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
AuthMethod = Literal["api_key", "oauth2", "mtls"]
# GDPR Art. 6(1)(a)-(f).
LegalBasis = Literal[
    "consent",
    "contract",
    "legal_obligation",
    "vital_interests",
    "public_task",
    "legitimate_interests",
]
# GDPR Art. 45 (adequacy), 46(2)(c) (SCC), 47 (BCR), 49 (derogations).
Safeguard = Literal["adequacy", "SCC", "BCR", "derogation"]
# GDPR Art. 49(1) points (a)-(g), and the second subparagraph (compelling legitimate
# interests of a non-repetitive transfer of a limited number of data subjects).
Derogation = Literal["a", "b", "c", "d", "e", "f", "g", "second_subparagraph"]
# GDPR Art. 9(2)(a)-(j): the conditions under which special-category data may be processed.
SpecialCategoryCondition = Literal[
    "explicit_consent",  # (a)
    "employment_social_security",  # (b)
    "vital_interests",  # (c)
    "not_for_profit_body",  # (d)
    "made_public_by_data_subject",  # (e)
    "legal_claims",  # (f)
    "substantial_public_interest",  # (g)
    "health_or_social_care",  # (h)
    "public_health",  # (i)
    "archiving_research_statistics",  # (j)
]
# The integration types of the seed's risk table (interlock.check.types).
IntegrationType = Literal[
    "rest", "file_transfer", "shared_database", "messaging", "event_streaming", "b2b_edi"
]
# The deployment's role in an integration's processing (GDPR Art. 4(7), 4(8), 26).
ProcessingRole = Literal["controller", "processor", "joint_controller"]

_SEGMENT: Final = re.compile(r"^(\{[a-z_][a-z0-9_]*\}|[A-Za-z0-9._~!$&'()*+,=:@-]+)$")
_PARAM: Final = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_SQL_NAME: Final = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
_SQL_VIEW: Final = r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$"
# Where a rule's value comes from: a body field (dotted path, [] for each item), a path
# parameter or a query parameter.
_RULE_VALUE: Final = (
    r"^(body:[A-Za-z_][A-Za-z0-9_-]*(\[\])?(\.[A-Za-z_][A-Za-z0-9_-]*(\[\])?)*"
    r"|path:[a-z_][a-z0-9_]*|query:[A-Za-z_][A-Za-z0-9_.-]*)$"
)
# The kind of a data-subject identifier: email and phone are normalised (lower-case
# address, E.164 number); any other kind (customer_id, account_id, ...) is compared as
# written, surrounding white space removed (interlock.gdpr.identifiers).
SUBJECT_KIND_PATTERN: Final = r"^[a-z][a-z0-9_]{0,31}$"
# A named bind parameter of a connector statement (":subject", ":name").
_BIND: Final = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")


class System(_Model):
    """A connected system: where it is, who owns it, how to trust and reach it."""

    url: str
    owner: Text | None = None
    location: Country
    ca: str = "system"
    credentials: str | None = None
    # Mutual TLS towards the system: a client certificate from Interlock's own PKI,
    # issued and renewed automatically.
    client_cert: Literal["pki:auto"] | None = None
    tls: TlsPolicy | None = None
    description: Text | None = None
    # How data-subject requests reach this system (docs/privacy.md): a signed HTTPS
    # webhook or parameterised SQL statements; without one, a request lists the
    # system for the operator to act on and confirm ("manual").
    privacy: SystemPrivacy | None = None

    @field_validator("url")
    @classmethod
    def _https_only(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "https":
            raise ValueError(
                f"upstream must use https:// (got {parts.scheme or 'no'} scheme): without "
                "TLS anyone on the network path can read and change the data and "
                "impersonate the system"
            )
        if not parts.hostname:
            raise ValueError("URL has no host")
        if parts.username or parts.password:
            raise ValueError(
                "URL must not carry credentials; name them with credentials: secret://..."
            )
        if parts.query or parts.fragment:
            raise ValueError("URL must not have a query or fragment")
        return value

    @field_validator("ca", mode="before")
    @classmethod
    def _trust_anchor(cls, value: object) -> object:
        return check_trust_anchor(value)

    @field_validator("credentials")
    @classmethod
    def _by_reference(cls, value: str | None) -> str | None:
        return check_secret_reference(value)


class Role(_Model):
    """A named set of scopes."""

    scopes: tuple[Scope, ...] = Field(min_length=1)
    description: Text | None = None

    @field_validator("scopes")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _no_duplicates(value, "scope")


class OperatorAccount(_Model):
    """A person who runs the ``interlock`` command on the host, by operating-system user name.

    Holding a role here grants what the role guards among operator tools (the
    dead-letter queues of messaging integrations name the role that may handle
    them); the audit trail records the operator as ``admin:NAME``.
    """

    roles: tuple[Name, ...] = Field(min_length=1)
    description: Text | None = None


class Client(_Model):
    """A service account: how it may authenticate and which roles it holds.

    ``introspection`` (RFC 7662 §4): ``own`` (the default) lets the client
    introspect only tokens issued to itself; any other token answers
    ``active: false``. ``all`` is for a resource server that must check
    other clients' tokens; it needs ``oauth2`` to authenticate at the endpoint.
    """

    auth: tuple[AuthMethod, ...] = Field(min_length=1)
    roles: tuple[Name, ...] = ()
    introspection: Literal["own", "all"] = "own"
    description: Text | None = None

    @field_validator("auth", "roles")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _no_duplicates(value, "entry")

    @model_validator(mode="after")
    def _introspects_with_oauth2(self) -> Client:
        if self.introspection == "all" and "oauth2" not in self.auth:
            raise ValueError(
                "introspection: all needs oauth2 in auth: a client authenticates at the "
                "introspection endpoint with its OAuth credentials"
            )
        return self


class RateLimits(_Model):
    """Rate limits of a route, by dimension (e.g. ``per_client: 1000/min``)."""

    per_client: RateValue | None = None
    per_ip: RateValue | None = None
    per_route: RateValue | None = None
    per_integration: RateValue | None = None


class ReplayPolicy(_Model):
    """Signed requests on a route (RFC 9421): how fresh, and whether each is single-use.

    A route with a replay policy accepts only requests signed by one of the
    calling client's registered signature keys, covering at least the method,
    the target URI and (with a body) its ``Content-Digest``. The signature's
    ``created`` time must lie within ``window`` (and not in the future); its
    ``nonce`` is accepted once within that window (``required``: a signature
    without one is refused).
    """

    window: Duration = timedelta(minutes=5)
    nonce: Literal["required", "optional"] = "required"

    @field_validator("window")
    @classmethod
    def _sensible_window(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=10) <= value <= timedelta(hours=1):
            raise ValueError(
                "the replay window is between 10s and 1h: shorter refuses honest clocks, "
                "longer keeps captured requests replayable (and nonces stored) for too long"
            )
        return value


class ParamSpec(_Model):
    """A path or query parameter's type and bounds; the value must satisfy all given.

    ``pattern`` is a Python regular expression matched against the *whole*
    value. A path parameter without a spec must match :data:`DEFAULT_PARAM`.
    """

    type: Literal["string", "integer", "number", "boolean"] = "string"
    pattern: str | None = Field(default=None, max_length=500)
    format: Literal["uuid", "date", "date-time", "email"] | None = None
    enum: tuple[str | int | float | bool, ...] | None = Field(default=None, min_length=1)
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = Field(default=None, ge=0)
    max_length: int = Field(default=256, ge=1, le=8192)
    # Query parameters only (a path parameter is always present).
    required: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
        return value


class JsonLimits(_Model):
    """Structural limits of a JSON body, checked while it is parsed (before any schema)."""

    max_depth: int = Field(default=32, ge=1, le=512)
    max_string_length: int = Field(default=65536, ge=1)
    # Characters of a number literal: "1e999999" and 5000-digit integers are refused.
    max_number_length: int = Field(default=40, ge=1, le=4300)
    max_members: int = Field(default=10000, ge=1)  # per object, and items per array


class XmlPolicy(_Model):
    """XML bodies: parsed with defusedxml (no DTD, entities or external references)."""

    # An XSD to validate against, relative to the manifest's directory.
    schema_file: str | None = Field(default=None, max_length=500)
    max_depth: int = Field(default=64, ge=1, le=1024)


class CsvPolicy(_Model):
    """CSV bodies: size and shape limits, and formula cells neutralised for the target."""

    max_rows: int = Field(default=100_000, ge=1)
    max_columns: int = Field(default=256, ge=1)
    max_field_length: int = Field(default=32768, ge=1)
    # Prefix cells starting with = + - @ TAB or CR with ' (OWASP CSV injection) before
    # forwarding, so a spreadsheet opening the file shows text instead of running it.
    neutralise_formulas: bool = True
    delimiter: Literal[",", ";", "\t", "|"] = ","


class Route(_Model):
    """One path the gateway serves: who may call it and where it goes."""

    method: Method
    path: str
    upstream: Name
    upstream_path: str | None = None
    scope: Scope
    # The authentication methods this route accepts (default: any its client may use).
    auth: tuple[AuthMethod, ...] | None = Field(default=None, min_length=1)
    rate_limit: RateLimits | None = None
    # Idempotency-Key (IETF httpapi draft): required, optional (honoured when sent), or off.
    idempotency: Literal["required", "optional"] | None = None
    # Signed requests (RFC 9421) with a timestamp window and single-use nonces.
    replay: ReplayPolicy | None = None
    response_fields: tuple[FieldPath, ...] | None = None
    # Boundary validation (request bodies, parameters, business rules).
    max_body: ByteSize = 1024 * 1024
    # Accepted request media types (default by what the route parses: JSON, or XML/CSV).
    content_types: tuple[MediaType, ...] | None = Field(default=None, min_length=1)
    # A JSON Schema (2020-12) for the request body, inline.
    request_schema: dict[str, Any] | None = None
    json_limits: JsonLimits = JsonLimits()
    xml: XmlPolicy | None = None
    csv: CsvPolicy | None = None
    params: dict[Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*$")], ParamSpec] = (
        Field(default_factory=dict)
    )
    # The query parameters the route accepts; any other is refused.
    query: dict[QueryName, ParamSpec] = Field(default_factory=dict)
    rules: tuple[RuleName, ...] = ()
    # Data minimisation of request bodies forwarded to the target.
    request_fields: tuple[FieldPath, ...] | None = None
    # The data category of fields the route carries (docs/privacy.md): a path of
    # response_fields, request_fields or request_schema -> a fideslang key.
    field_categories: dict[FieldPath, DataCategory] = Field(default_factory=dict)
    # Headers relayed beyond the gateway's default allow-lists (docs/gateway.md):
    # request headers to the upstream, and the upstream's response headers to the caller.
    forward_headers: tuple[ForwardHeader, ...] = ()
    return_headers: tuple[ReturnHeader, ...] = ()
    # Where data-subject identifiers appear (docs/privacy.md): recorded as keyed
    # hashes in the lineage index, never in clear. Added to the integration's.
    subjects: tuple[SubjectLocator, ...] = ()

    @property
    def label(self) -> str:
        """``METHOD /path``: how logs, metrics and the audit trail name this route."""
        return f"{self.method} {self.path}"

    @property
    def accepted_types(self) -> tuple[str, ...]:
        """The media types a request body may have on this route."""
        if self.content_types is not None:
            return self.content_types
        if self.xml is not None:
            return ("application/xml", "text/xml")
        if self.csv is not None:
            return ("text/csv",)
        return ("application/json",)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("path", "upstream_path")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None:
            _check_template(value)
        return value

    @field_validator("path")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        for own in RESERVED_PATHS:
            if value == own or value.startswith(own + "/"):
                raise ValueError(f"{own} is the gateway's own endpoint; choose another path")
        return value

    @field_validator("upstream_path")
    @classmethod
    def _params_known(cls, value: str | None, info: ValidationInfo) -> str | None:
        path = info.data.get("path")
        if value is not None and isinstance(path, str):
            unknown = set(_PARAM.findall(value)) - set(_PARAM.findall(path))
            if unknown:
                raise ValueError(
                    f"upstream_path uses {', '.join(sorted(unknown))}, not in the route's path"
                )
        return value

    @field_validator("response_fields", "request_fields", "content_types", "rules")
    @classmethod
    def _unique(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else _no_duplicates(value, "entry")

    @field_validator("forward_headers", "return_headers")
    @classmethod
    def _unique_headers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Header names are case-insensitive (RFC 9110 §5.1).
        _no_duplicates(tuple(name.lower() for name in value), "header")
        return value

    @field_validator("params")
    @classmethod
    def _params_in_template(
        cls, value: dict[str, ParamSpec], info: ValidationInfo
    ) -> dict[str, ParamSpec]:
        path = info.data.get("path")
        if isinstance(path, str):
            unknown = set(value) - set(_PARAM.findall(path))
            if unknown:
                raise ValueError(
                    f"params describes {', '.join(sorted(unknown))}, not in the route's path"
                )
        for name, spec in value.items():
            if spec.required:
                raise ValueError(f"params.{name}: a path parameter is always required")
        return value

    @field_validator("request_schema")
    @classmethod
    def _schema_shape(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(repr(value)) > 256 * 1024:
            raise ValueError("a request schema is at most 256 KiB")
        return value


class WebhookConnector(_Model):
    """Data-subject requests sent to an HTTPS endpoint of the system.

    Each step is one ``POST`` of JSON, signed by Interlock (RFC 9421, its OAuth
    signing key, published in its JWKS), over TLS verified against the system's
    ``ca``; ``credentials`` (a ``secret://`` reference) is sent as the
    ``Authorization`` header when given.
    """

    url: str
    credentials: str | None = None
    timeout: Duration = timedelta(seconds=30)

    @field_validator("url")
    @classmethod
    def _https_only(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(
                "a webhook connector must use https:// with a host: it carries a person's "
                "identifiers and data"
            )
        if parts.username or parts.password or parts.fragment:
            raise ValueError("URL must not carry credentials or a fragment")
        return value

    @field_validator("credentials")
    @classmethod
    def _by_reference(cls, value: str | None) -> str | None:
        if value is not None and not _SECRET_REF.match(value):
            raise ValueError("credentials must be a reference like secret://erp/privacy-token")
        return value


_SqlStatement = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)
]


class SqlConnector(_Model):
    """Data-subject requests answered by parameterised SQL on the system's database.

    ``database`` is a ``secret://`` reference to a SQLAlchemy URL (PostgreSQL or
    MariaDB). Each statement is one statement with named bind parameters, never
    built from strings: ``:subject`` is the identifier; a ``rectify`` statement
    binds the corrected fields by name (``:name``). ``access`` is a ``SELECT``
    whose rows are the system's answer to access and export requests.
    """

    database: str
    access: _SqlStatement | None = None
    erase: _SqlStatement | None = None
    rectify: _SqlStatement | None = None

    @field_validator("database")
    @classmethod
    def _by_reference(cls, value: str) -> str:
        if not _SECRET_REF.match(value):
            raise ValueError(
                "database must be a reference like secret://erp/privacy-url; connection "
                "strings are never written into the manifest"
            )
        return value

    @field_validator("access", "erase", "rectify")
    @classmethod
    def _one_parameterised_statement(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if ";" in value.rstrip().rstrip(";"):
            raise ValueError("a connector statement is one SQL statement (no ';' inside)")
        if "subject" not in _BIND.findall(value):
            raise ValueError(
                f"the {info.field_name} statement must bind the identifier as :subject "
                "(values are bound, never written into the SQL)"
            )
        first = value.lstrip("( \n\t").split(None, 1)[0].upper()
        if info.field_name == "access" and first not in {"SELECT", "WITH"}:
            raise ValueError("the access statement is a SELECT")
        return value.rstrip().rstrip(";")

    def binds(self, action: str) -> tuple[str, ...]:
        """The named bind parameters of ``action``'s statement, in order of appearance."""
        statement = getattr(self, action)
        return tuple(dict.fromkeys(_BIND.findall(statement))) if statement else ()

    @model_validator(mode="after")
    def _something(self) -> SqlConnector:
        if self.access is None and self.erase is None and self.rectify is None:
            raise ValueError("a SQL connector needs at least one of access, erase, rectify")
        return self


class SystemPrivacy(_Model):
    """How a system answers data-subject requests: one connector, and the kinds it knows."""

    webhook: WebhookConnector | None = None
    sql: SqlConnector | None = None
    # The identifier kinds the system can look a person up by (default: any).
    kinds: tuple[Annotated[str, StringConstraints(pattern=SUBJECT_KIND_PATTERN)], ...] = ()

    @model_validator(mode="after")
    def _one_connector(self) -> SystemPrivacy:
        if (self.webhook is None) == (self.sql is None):
            raise ValueError("privacy names exactly one connector: webhook or sql")
        return self

    @property
    def connector(self) -> Literal["webhook", "sql"]:
        """Which connector the system uses."""
        return "webhook" if self.webhook is not None else "sql"


class SubjectLocator(_Model):
    """Where a data-subject identifier appears in a route's traffic, and of which kind.

    ``in`` is ``path`` or ``query`` (``param`` names the parameter), ``request``
    or ``response`` (the body: ``json`` is an RFC 6901 JSON Pointer such as
    ``/customer/email`` or an RFC 9535 JSONPath such as ``$.lines[*].email``;
    ``csv_column`` a CSV header; ``xml`` an ElementTree path such as
    ``./customer/email``). ``received_by`` says which side receives the data
    about that person: ``upstream`` (the route's system), ``caller`` (the
    integration's other system, only when the upstream answered 2xx) or
    ``both``; by default ``upstream`` for a request body, ``caller`` for a
    response body and ``both`` for path and query parameters. ``region``: the
    country whose national phone numbers are written without a country code.
    """

    kind: Annotated[str, StringConstraints(pattern=SUBJECT_KIND_PATTERN)]
    in_: Literal["path", "query", "request", "response"] = Field(alias="in")
    param: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")] | None = (
        None
    )
    json_path: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = Field(
        default=None, alias="json"
    )
    csv_column: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    xml: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None
    received_by: Literal["upstream", "caller", "both"] | None = None
    region: Country | None = None

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _one_place(self) -> SubjectLocator:
        given = [n for n in ("param", "json", "csv_column", "xml") if self._place(n) is not None]
        if self.in_ in {"path", "query"}:
            if given != ["param"]:
                raise ValueError(f"a subject in the {self.in_} names its parameter with param")
        elif len(given) != 1 or given == ["param"]:
            raise ValueError(
                f"a subject in the {self.in_} body names exactly one of json (a JSON Pointer "
                "'/a/b' or JSONPath '$.a[*].b'), csv_column or xml"
            )
        if self.json_path is not None and not self.json_path.startswith(("/", "$")):
            raise ValueError("json is a JSON Pointer ('/customer/email') or a JSONPath ('$...')")
        if self.region is not None and self.kind != "phone":
            raise ValueError("region applies to phone numbers only")
        return self

    def _place(self, name: str) -> str | None:
        return {"param": self.param, "json": self.json_path, "csv_column": self.csv_column,
                "xml": self.xml}[name]  # fmt: skip

    @property
    def receivers(self) -> frozenset[Literal["upstream", "caller"]]:
        """Who receives data about the person this identifies."""
        chosen = self.received_by or (
            "upstream" if self.in_ == "request" else "caller" if self.in_ == "response" else "both"
        )
        if chosen == "both":
            return frozenset({"upstream", "caller"})
        return frozenset({chosen})


class SqlRule(_Model):
    """A business rule answered by a read-only SQL view: a row must exist for the value.

    ``SELECT 1 FROM <view> WHERE <column> = :value LIMIT 1``, parameterised, in
    a read-only transaction, on the database whose SQLAlchemy URL is the
    secret ``database`` names. ``value`` says where the value comes from:
    ``body:customer.id`` (``body:lines[].sku`` checks every item),
    ``path:id`` or ``query:customer``. ``message`` is what the caller is told.
    The value must be present and a scalar, or the request is refused (fail
    closed); ``optional: true`` lets it be absent (the rule is then skipped),
    never null, a list or an object.
    """

    database: str
    view: Annotated[str, StringConstraints(pattern=_SQL_VIEW)]
    column: Annotated[str, StringConstraints(pattern=_SQL_NAME)]
    value: Annotated[str, StringConstraints(pattern=_RULE_VALUE)]
    message: Text
    optional: bool = False

    @model_validator(mode="after")
    def _optional_input(self) -> SqlRule:
        if self.optional and self.value.startswith("path:"):
            raise ValueError(
                "optional applies to body: and query: values; a path parameter is always present"
            )
        return self

    @field_validator("database")
    @classmethod
    def _by_reference(cls, value: str) -> str:
        if not _SECRET_REF.match(value):
            raise ValueError(
                "database must be a reference like secret://catalogue/readonly-url; "
                "connection strings are never written into the manifest"
            )
        return value


class Transfer(_Model):
    """A transfer of personal data to a third country (GDPR Chapter V).

    ``adequacy`` is accepted only for a country with an adequacy decision
    (:mod:`interlock.gdpr.adequacy`, checked in :mod:`interlock.config.checks`);
    ``dpf_certified`` says the US recipient is certified under the EU-US Data
    Privacy Framework; ``derogation`` names the Art. 49(1) point relied on.
    """

    destination: Country
    safeguard: Safeguard
    dpf_certified: bool = False
    derogation: Derogation | None = None

    @field_validator("safeguard", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        spelled = {"scc": "SCC", "bcr": "BCR", "adequacy": "adequacy", "derogation": "derogation"}
        return spelled.get(value.lower(), value) if isinstance(value, str) else value

    @field_validator("derogation", mode="before")
    @classmethod
    def _point(cls, value: object) -> object:
        # "49(1)(a)", "(a)" and "a" all name point (a).
        if isinstance(value, str):
            text = value.strip().lower().removeprefix("art.").strip().removeprefix("49(1)")
            return text.strip("() ") or value
        return value

    @model_validator(mode="after")
    def _derogation_named(self) -> Transfer:
        if self.safeguard == "derogation" and self.derogation is None:
            raise ValueError(
                "a derogation must name the Art. 49(1) point relied on: derogation: a-g, "
                "or second_subparagraph (compelling legitimate interests); Art. 49 is no "
                "general permission"
            )
        if self.safeguard != "derogation" and self.derogation is not None:
            raise ValueError("derogation applies only with safeguard: derogation")
        return self

    @model_validator(mode="after")
    def _adequate(self) -> Transfer:
        # GDPR Art. 45: adequacy only where the Commission decided it, within its scope.
        if self.safeguard != "adequacy":
            return self
        decision = adequacy_decision(self.destination)
        if decision is None:
            raise ValueError(
                f"{self.destination} has no EU adequacy decision (GDPR Art. 45): use SCC "
                "(Art. 46(2)(c)), BCR (Art. 47) or a derogation (Art. 49) naming its point"
            )
        if self.destination == "US" and not self.dpf_certified:
            raise ValueError(
                f"the US adequacy decision ({decision.decision}) covers only recipients "
                "certified under the EU-US Data Privacy Framework: add dpf_certified: true "
                "once the recipient's certification is checked, or use SCC"
            )
        return self


class Party(_Model):
    """A person or body and how to reach them (GDPR Art. 30(1)(a))."""

    name: Text
    contact: Text
    # ISO 3166-1 country of establishment (a controller outside the EEA needs a
    # representative in the Union, Art. 27).
    country: Country | None = None


class Organisation(_Model):
    """Who is responsible for the processing: the controller, its representative, its DPO.

    GDPR Art. 30(1)(a): the name and contact details of the controller and,
    where applicable, the joint controller, the controller's representative
    (Art. 27) and the data protection officer (Art. 37).
    """

    controller: Party
    representative: Party | None = None
    dpo: Party | None = None


class Integration(_Model):
    """One data flow from a source to a target system, with its GDPR facts and routes."""

    # The kind of integration (interlock check adds its type's mitigations); None:
    # inferred, REST when the integration has routes, otherwise unknown.
    type: IntegrationType | None = None
    source: Name
    target: Name
    client: Name
    # Other clients that may call this integration's routes (a route belongs to its
    # integration: a client holding the scope, but not named here, is refused).
    callers: tuple[Name, ...] = ()
    purpose: Text
    legal_basis: LegalBasis
    data_categories: tuple[DataCategory, ...] = ()
    data_subjects: tuple[DataSubject, ...] = ()
    retention: Duration
    transfer: Transfer | None = None
    # GDPR register facts (docs/privacy.md): the deployment's role here and, for a
    # processor or joint controller, the other party; recipients (Art. 30(1)(d));
    # measures beyond the configured controls (Art. 30(1)(g)); the Art. 9(2)
    # condition for special categories and the Art. 10 basis for criminal data.
    role: ProcessingRole = "controller"
    other_party: Text | None = None
    recipients: tuple[Text, ...] = ()
    security_measures: tuple[Text, ...] = ()
    special_category_condition: SpecialCategoryCondition | None = None
    criminal_data_basis: Text | None = None
    # The audit trail: "required" answers 503 instead of releasing data when the
    # request's entry cannot be made durable; "best_effort" records without
    # waiting. Default: required when the flow carries personal data (user.*).
    audit: Literal["required", "best_effort"] | None = None
    # Subject identifiers every route of the integration carries (each route adds its own).
    subjects: tuple[SubjectLocator, ...] = ()
    routes: tuple[Route, ...] = ()
    # type: messaging — the broker, destination, consumers and protection of its
    # messages (interlock.config.messaging, docs/messaging.md).
    messaging: MessagingSpec | None = None
    # type: event_streaming — subjects, compatibility modes and per-consumer grants
    # (interlock.config.events, docs/events.md).
    events: EventsSpec | None = None
    # type: file_transfer or b2b_edi — the partner, transport, schedule and the checks
    # each file passes in quarantine (interlock.config.files, docs/files.md).
    files: FilesSpec | None = None
    # type: shared_database — the database system and each consumer's views
    # (interlock.config.databases, docs/databases.md).
    database: DatabaseSpec | None = None

    @field_validator("callers")
    @classmethod
    def _unique_callers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _no_duplicates(value, "caller")

    @model_validator(mode="after")
    def _type_section(self) -> Integration:
        # A section of another type first: "an events: section belongs to ..." says more
        # than "type messaging needs a messaging: section" when the type is what is wrong.
        if self.messaging is not None and self.type != "messaging":
            raise ValueError("a messaging: section belongs to an integration of type messaging")
        if self.events is not None and self.type != "event_streaming":
            raise ValueError("an events: section belongs to an integration of type event_streaming")
        if self.files is not None and self.type not in {"file_transfer", "b2b_edi"}:
            raise ValueError("a files: section belongs to a file_transfer or b2b_edi integration")
        if self.database is not None and self.type != "shared_database":
            raise ValueError(
                "a database: section belongs to an integration of type shared_database"
            )
        if self.type == "messaging" and self.messaging is None:
            raise ValueError(
                "type messaging needs a messaging: section (broker, destination, "
                "consumers, dead_letter)"
            )
        if self.type == "event_streaming" and self.events is None:
            raise ValueError(
                "type event_streaming needs an events: section (broker, destination, "
                "subjects, consumers, dead_letter)"
            )
        return self

    @model_validator(mode="after")
    def _other_party(self) -> Integration:
        if self.role != "controller" and self.other_party is None:
            raise ValueError(
                f"role {self.role} needs other_party: the controller on whose behalf this "
                "is processed, or the joint controller (GDPR Art. 28, 26, 30(1)(a))"
            )
        return self

    @property
    def all_callers(self) -> frozenset[str]:
        """The clients that may call this integration's routes: its client and its callers."""
        return frozenset((self.client, *self.callers))

    @property
    def audit_required(self) -> bool:
        """Whether a forwarded request waits for its durable audit entry (fail closed)."""
        if self.audit is not None:
            return self.audit == "required"
        return any(category.startswith("user") for category in self.data_categories)


class TrustedIssuer(_Model):
    """An external OAuth 2.0 issuer (Keycloak, Entra ID, ...) whose access tokens are accepted.

    Its keys come from ``jwks_uri`` over verified TLS (``ca`` as for systems)
    or from ``jwks_file``. Only tokens for one of ``audiences``, signed with
    one of ``algorithms`` (never ``none`` or HMAC; each bound to its key type
    and curve, RSA of at least 2048 bits), typed as one of
    ``token_types``, and naming a client listed in ``clients`` are accepted;
    the token's scopes count only as far as the mapped manifest client's
    roles grant them.
    """

    issuer: str
    jwks_uri: str | None = None
    jwks_file: str | None = None
    ca: str = "system"
    audiences: tuple[Annotated[str, StringConstraints(min_length=1)], ...] = Field(min_length=1)
    # The issuer's own allow-list (RFC 8725 §3.1). PS256 and ES384: FAPI 2.0, Keycloak, Auth0.
    algorithms: tuple[Literal["ES256", "ES384", "Ed25519", "PS256", "RS256"], ...] = Field(
        default=("ES256", "RS256"), min_length=1
    )
    # RFC 9068 tokens are typed at+jwt; Keycloak and Entra ID still type theirs JWT.
    token_types: tuple[Literal["at+jwt", "JWT"], ...] = ("at+jwt",)
    client_claim: Literal["client_id", "azp", "appid", "sub"] = "client_id"
    # The issuer's client ids -> manifest clients (least privilege: nobody else gets in).
    clients: dict[Annotated[str, StringConstraints(min_length=1, max_length=256)], Name] = Field(
        min_length=1
    )

    @field_validator("algorithms")
    @classmethod
    def _unique_algorithms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _no_duplicates(value, "algorithm")

    @field_validator("algorithms", mode="before")
    @classmethod
    def _asymmetric_only(cls, value: object) -> object:
        for alg in value if isinstance(value, list | tuple) else ():
            if isinstance(alg, str) and (alg.lower() == "none" or alg.upper().startswith("HS")):
                raise ValueError(
                    f"{alg} is refused: 'none' is no signature, and an HMAC algorithm lets "
                    "anyone holding the issuer's public key forge tokens (RFC 8725 §2.1); "
                    "use ES256, ES384, Ed25519, PS256 or RS256"
                )
        return value

    @field_validator("issuer", "jwks_uri")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme != "https":
            raise ValueError("must be an https:// URL: keys fetched without TLS can be replaced")
        return value

    @field_validator("ca", mode="before")
    @classmethod
    def _trust_anchor(cls, value: object) -> object:
        return System._trust_anchor(value)

    @model_validator(mode="after")
    def _one_source(self) -> TrustedIssuer:
        if (self.jwks_file is None) == (self.jwks_uri is None):
            raise ValueError("give exactly one of jwks_uri and jwks_file")
        return self


class Manifest(_Model):
    """The whole manifest: the one source of truth for what Interlock connects."""

    version: Literal[1]
    tls: TlsPolicy = TlsPolicy()
    organisation: Organisation | None = None
    systems: dict[Name, System] = Field(default_factory=dict)
    roles: dict[Name, Role] = Field(default_factory=dict)
    clients: dict[Name, Client] = Field(default_factory=dict)
    integrations: dict[Name, Integration] = Field(default_factory=dict)
    trusted_issuers: dict[Name, TrustedIssuer] = Field(default_factory=dict)
    # Business rules answered by SQL views (Python rules come from entry points).
    rules: dict[RuleName, SqlRule] = Field(default_factory=dict)
    # Scopes that clients of several integrations may hold (declared, never implied).
    shared_scopes: tuple[Scope, ...] = ()
    # Message brokers of messaging integrations (interlock.config.messaging).
    brokers: dict[Name, Broker] = Field(default_factory=dict)
    # Trading partners of file and B2B integrations (interlock.config.files).
    partners: dict[Name, Partner] = Field(default_factory=dict)
    # Database servers of shared-database integrations (interlock.config.databases).
    databases: dict[Name, DatabaseSystem] = Field(default_factory=dict)
    # People who run the interlock command, and the roles they hold (dead-letter queues).
    operators: dict[OperatorName, OperatorAccount] = Field(default_factory=dict)


RULES_ENTRY_POINTS: Final = "interlock.rules"
"""The entry-point group of Python business rules (``rules: [name]`` on a route)."""

DEFAULT_PARAM: Final = r"[A-Za-z0-9._~-]{1,128}"
"""What a path parameter without a ``params`` entry must look like (RFC 3986 unreserved)."""


def media_kind(media_type: str) -> Literal["json", "xml", "csv", "other"]:
    """How a body of ``media_type`` is parsed: JSON, XML, CSV, or not at all."""
    main = media_type.split(";", 1)[0].strip().lower()
    if main == "application/json" or (main.startswith("application/") and main.endswith("+json")):
        return "json"
    if main in {"application/xml", "text/xml"} or main.endswith("+xml"):
        return "xml"
    if main == "text/csv":
        return "csv"
    return "other"


#: Scopes of the gateway's own endpoints, granted by roles like any other: reading
#: (GET) and writing (PUT) the vault API at /v1/secrets, and the data-subject
#: request API at /v1/privacy.
GATEWAY_SCOPES: Final = (
    "vault.read",
    "vault.write",
    "privacy.admin",
    "schemas.read",
    "schemas.write",
)

#: Scopes that operator tools check rather than routes: handling a messaging
#: integration's dead letters (a role holding it is named by ``dead_letter.role``).
OPERATOR_SCOPES: Final = ("messaging.dead_letters",)

#: Paths the gateway answers itself (fixed interfaces, the vault, data-subject
#: requests, messaging integrations' public keys, the schema registry); no route may use them.
RESERVED_PATHS: Final = (
    "/oauth2",
    "/.well-known",
    "/v1/secrets",
    "/v1/privacy",
    "/v1/messaging",
    "/v1/schemas",
    "/pki/crl",
    "/healthz",
    "/metrics",
)


def template_params(path: str) -> tuple[str, ...]:
    """The parameter names of a path template, in order: ``/a/{x}/b/{y}`` -> ``("x", "y")``."""
    return tuple(_PARAM.findall(path))


def template_shape(path: str) -> str:
    """The template with parameter names erased: ``/orders/{id}`` -> ``/orders/{}``."""
    return _PARAM.sub("{}", path)


def _check_template(path: str) -> None:
    if not path.startswith("/"):
        raise ValueError("a path template starts with '/'")
    if path == "/":
        return
    if path.endswith("/"):
        raise ValueError("a path template does not end with '/'")
    segments = path[1:].split("/")
    for segment in segments:
        if segment in {"", ".", ".."}:
            raise ValueError("a path template has no empty, '.' or '..' segments")
        if not _SEGMENT.match(segment):
            raise ValueError(
                f"segment {segment!r} is neither literal text nor one {{parameter}} "
                "(no '%', ';', '?', '#' or spaces)"
            )
    _no_duplicates(tuple(_PARAM.findall(path)), "parameter")


def _no_duplicates(values: tuple[str, ...], noun: str) -> tuple[str, ...]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {noun} {value!r}")
        seen.add(value)
    return values
