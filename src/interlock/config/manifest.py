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
from interlock.config.urls import check_https_url
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
    HttpsUrl,
    MediaType,
    Name,
    QueryName,
    RuleName,
    Scope,
    SecretRef,
    Text,
    TlsPolicy,
    TrustAnchor,
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
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
# A named bind parameter of a connector statement (":subject", ":name").
_BIND: Final = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")


class System(_Model):
    """A connected system: where it is, who owns it, how to trust and reach it."""

    url: HttpsUrl = Field(
        description=(
            "The system's base URL; https:// only, without credentials, query or fragment."
        )
    )
    owner: Text | None = Field(
        default=None, description="Who is responsible for the system (a team or person)."
    )
    location: Country = Field(
        description=(
            "ISO 3166-1 alpha-2 country where the system processes data (for "
            "transfers and the register)."
        )
    )
    ca: TrustAnchor = Field(
        default="system",
        description=(
            "What the system's TLS certificate must chain to: system (the OS trust "
            "store), pki:NAME or file:PATH. Verification cannot be switched off."
        ),
    )
    credentials: SecretRef | None = Field(
        default=None,
        description=(
            "The credentials Interlock presents to the system, as a secret:// "
            "reference into the vault."
        ),
    )
    client_cert: Literal["pki:auto"] | None = Field(
        default=None,
        description=(
            "pki:auto: mutual TLS towards the system with a client certificate from "
            "Interlock's own PKI, issued and renewed automatically."
        ),
    )
    tls: TlsPolicy | None = Field(
        default=None, description="A stricter TLS minimum for this system than the manifest's."
    )
    description: Text | None = Field(
        default=None, description="Free text for people reading the manifest."
    )
    privacy: SystemPrivacy | None = Field(
        default=None,
        description=(
            "How data-subject requests reach this system (docs/privacy.md): a signed "
            "HTTPS webhook or parameterised SQL; without one, the operator acts and "
            "confirms by hand."
        ),
    )

    @field_validator("url")
    @classmethod
    def _https_only(cls, value: str) -> str:
        return check_https_url(
            value,
            what="upstream",
            why="without TLS anyone on the network path can read and change the data and "
            "impersonate the system",
            query=False,
        )

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

    scopes: tuple[Scope, ...] = Field(
        min_length=1, description="The scopes the role grants, e.g. orders.read."
    )
    description: Text | None = Field(
        default=None, description="Free text for people reading the manifest."
    )

    @field_validator("scopes")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _no_duplicates(value, "scope")


class OperatorAccount(_Model):
    """A person who runs the ``interlock`` command on the host, by operating-system user name.

    Holding a role here grants what the role guards among operator tools (the
    dead-letter queues of messaging integrations name the role that may handle
    them); the audit trail records the operator as ``admin:NAME``. The name is
    the one the password database gives the process's user id; ``LOGNAME`` and
    ``USER`` are not consulted (whoever starts a command sets them).
    """

    roles: tuple[Name, ...] = Field(
        min_length=1,
        description="The roles the operator holds (e.g. the role a dead-letter queue names).",
    )
    description: Text | None = Field(
        default=None, description="Free text for people reading the manifest."
    )


class Client(_Model):
    """A service account: how it may authenticate and which roles it holds.

    ``introspection`` (RFC 7662 §4): ``own`` (the default) lets the client
    introspect only tokens issued to itself; any other token answers
    ``active: false``. ``all`` is for a resource server that must check
    other clients' tokens; it needs ``oauth2`` to authenticate at the endpoint.
    """

    auth: tuple[AuthMethod, ...] = Field(
        min_length=1,
        description=(
            "How the client may authenticate: api_key, oauth2 (client credentials) and/or mtls."
        ),
    )
    roles: tuple[Name, ...] = Field(
        default=(), description="The roles the client holds; its scopes are the union of theirs."
    )
    introspection: Literal["own", "all"] = Field(
        default="own",
        description=(
            "Which tokens the client may introspect (RFC 7662): own (only its own) or"
            " all (a resource server; needs oauth2)."
        ),
    )
    description: Text | None = Field(
        default=None, description="Free text for people reading the manifest."
    )

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

    per_client: RateValue | None = Field(default=None, description="Requests per calling client.")
    per_ip: RateValue | None = Field(default=None, description="Requests per client IP address.")
    per_route: RateValue | None = Field(
        default=None, description="Requests to this route, all callers together."
    )
    per_integration: RateValue | None = Field(
        default=None, description="Requests to all routes of the integration together."
    )


class ReplayPolicy(_Model):
    """Signed requests on a route (RFC 9421): how fresh, and whether each is single-use.

    A route with a replay policy accepts only requests signed by one of the
    calling client's registered signature keys, covering at least the method,
    the target URI and (with a body) its ``Content-Digest``. The signature's
    ``created`` time must lie within ``window`` (and not in the future); its
    ``nonce`` is accepted once within that window (``required``: a signature
    without one is refused).
    """

    window: Duration = Field(
        default=timedelta(minutes=5),
        description=(
            "How old a signature's created time may be (10s to 1h); its nonce is "
            "remembered that long."
        ),
    )
    nonce: Literal["required", "optional"] = Field(
        default="required",
        description=(
            "required: a signature without a nonce is refused; optional: a nonce is "
            "checked when present."
        ),
    )

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

    type: Literal["string", "integer", "number", "boolean"] = Field(
        default="string", description="The parameter's type."
    )
    pattern: str | None = Field(
        default=None,
        max_length=500,
        description="A Python regular expression the whole value must match.",
    )
    format: Literal["uuid", "date", "date-time", "email"] | None = Field(
        default=None, description="A format the value must have."
    )
    enum: tuple[str | int | float | bool, ...] | None = Field(
        default=None, min_length=1, description="The only values allowed."
    )
    minimum: float | None = Field(
        default=None, description="Smallest number allowed (integer and number)."
    )
    maximum: float | None = Field(
        default=None, description="Largest number allowed (integer and number)."
    )
    min_length: int | None = Field(
        default=None, ge=0, description="Fewest characters.", examples=[3]
    )
    max_length: int = Field(default=256, ge=1, le=8192, description="Most characters.")
    required: bool = Field(
        default=False,
        description=(
            "Query parameters only: the parameter must be present (a path parameter always is)."
        ),
    )

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

    max_depth: int = Field(
        default=32, ge=1, le=512, description="Deepest nesting of objects and arrays."
    )
    max_string_length: int = Field(
        default=65536, ge=1, description="Longest string, in characters."
    )
    max_number_length: int = Field(
        default=40,
        ge=1,
        le=4300,
        description=(
            "Characters of a number literal (1e999999 and 5000-digit integers are refused)."
        ),
    )
    max_members: int = Field(
        default=10000, ge=1, description="Most members of an object, and items of an array."
    )


class XmlPolicy(_Model):
    """XML bodies: parsed with defusedxml (no DTD, entities or external references)."""

    schema_file: str | None = Field(
        default=None,
        max_length=500,
        description=(
            "An XSD to validate XML bodies against, relative to the manifest's directory."
        ),
        examples=["schemas/order.xsd"],
    )
    max_depth: int = Field(default=64, ge=1, le=1024, description="Deepest element nesting.")


class CsvPolicy(_Model):
    """CSV bodies: size and shape limits, and formula cells neutralised for the target."""

    max_rows: int = Field(default=100_000, ge=1, description="Most rows.")
    max_columns: int = Field(default=256, ge=1, description="Most columns.")
    max_field_length: int = Field(default=32768, ge=1, description="Longest cell, in characters.")
    neutralise_formulas: bool = Field(
        default=True,
        description=(
            "Prefix cells starting with = + - @ TAB or CR with ' (OWASP CSV "
            "injection), so a spreadsheet shows text instead of running it."
        ),
    )
    delimiter: Literal[",", ";", "\t", "|"] = Field(default=",", description="The field delimiter.")


class Route(_Model):
    """One path the gateway serves: who may call it and where it goes."""

    method: Method = Field(description="The HTTP method.")
    path: str = Field(description="The path template the gateway serves, e.g. /orders/{id}.")
    upstream: Name = Field(
        description="The system the request is forwarded to (a name under systems)."
    )
    upstream_path: str | None = Field(
        default=None,
        description=(
            "The path on the upstream (default: the route's path); may use the route's parameters."
        ),
    )
    scope: Scope = Field(description="The scope a caller's token or key must carry.")
    auth: tuple[AuthMethod, ...] | None = Field(
        default=None,
        min_length=1,
        description=(
            "The authentication methods this route accepts (default: any its client may use)."
        ),
    )
    rate_limit: RateLimits | None = Field(
        default=None, description="Rate limits by dimension (per client, IP, route, integration)."
    )
    idempotency: Literal["required", "optional"] | None = Field(
        default=None,
        description=(
            "Idempotency-Key (IETF httpapi draft): required, or optional (honoured "
            "when sent); default off."
        ),
    )
    replay: ReplayPolicy | None = Field(
        default=None,
        description=("Signed requests (RFC 9421) with a timestamp window and single-use nonces."),
    )
    response_fields: tuple[FieldPath, ...] | None = Field(
        default=None,
        description=(
            "Data minimisation of responses: only these fields reach the caller "
            "(items[].sku descends into arrays)."
        ),
    )
    max_body: ByteSize = Field(
        default=1024 * 1024, description="The largest request body accepted."
    )
    content_types: tuple[MediaType, ...] | None = Field(
        default=None,
        min_length=1,
        description=(
            "Accepted request media types (default by what the route parses: JSON, or XML/CSV)."
        ),
        examples=[["application/json", "application/merge-patch+json"]],
    )
    request_schema: dict[str, Any] | None = Field(
        default=None,
        description="A JSON Schema (2020-12) for the request body, inline.",
        examples=[
            {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}}}
        ],
    )
    json_limits: JsonLimits = Field(
        default=JsonLimits(), description="Structural limits of JSON bodies, checked while parsing."
    )
    xml: XmlPolicy | None = Field(
        default=None, description="Accept XML bodies, with these limits (parsed with defusedxml)."
    )
    csv: CsvPolicy | None = Field(default=None, description="Accept CSV bodies, with these limits.")
    params: dict[Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*$")], ParamSpec] = (
        Field(default_factory=dict, description="Types and bounds of path parameters, by name.")
    )
    query: dict[QueryName, ParamSpec] = Field(
        default_factory=dict,
        description="The query parameters the route accepts, by name; any other is refused.",
    )
    rules: tuple[RuleName, ...] = Field(
        default=(),
        description=(
            "Business rules the request must pass (names under rules, or Python entry points)."
        ),
    )
    request_fields: tuple[FieldPath, ...] | None = Field(
        default=None,
        description=(
            "Data minimisation of requests: only these body fields are forwarded to the target."
        ),
    )
    field_categories: dict[FieldPath, DataCategory] = Field(
        default_factory=dict,
        description=(
            "The data category of fields the route carries: a path of "
            "response_fields, request_fields or request_schema -> a fideslang key."
        ),
    )
    forward_headers: tuple[ForwardHeader, ...] = Field(
        default=(),
        description=(
            "Request headers relayed to the upstream beyond the gateway's default allow-list."
        ),
        examples=[["X-Request-Priority"]],
    )
    return_headers: tuple[ReturnHeader, ...] = Field(
        default=(),
        description=(
            "Upstream response headers relayed to the caller beyond the default allow-list."
        ),
        examples=[["X-Total-Count"]],
    )
    subjects: tuple[SubjectLocator, ...] = Field(
        default=(),
        description=(
            "Where data-subject identifiers appear (recorded as keyed hashes in the "
            "lineage index, never in clear); added to the integration's."
        ),
    )

    @property
    def label(self) -> str:
        """``METHOD /path``: how logs, metrics and the audit trail name this route."""
        return f"{self.method} {self.path}"

    @property
    def takes_body(self) -> bool:
        """Whether a request body is accepted: POST, PUT and PATCH; another method only when
        the route declares one (request_schema, request_fields, content_types, xml or csv).

        RFC 9110 §9.3.1, §9.3.5: a body on GET or DELETE has no defined meaning; one the
        route does not declare would reach the upstream unchecked, so the gateway refuses it.
        """
        if self.method in _BODY_METHODS:
            return True
        declared = (
            self.request_schema,
            self.request_fields,
            self.content_types,
            self.xml,
            self.csv,
        )
        return any(part is not None for part in declared)

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

    url: HttpsUrl = Field(description="The HTTPS endpoint that receives each signed request step.")
    credentials: SecretRef | None = Field(
        default=None,
        description="Sent as the Authorization header when given, as a secret:// reference.",
    )
    timeout: Duration = Field(
        default=timedelta(seconds=30), description="How long to wait for the endpoint's answer."
    )

    @field_validator("url")
    @classmethod
    def _https_only(cls, value: str) -> str:
        return check_https_url(
            value,
            what="a webhook connector",
            why="it carries a person's identifiers and data",
        )

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

    database: SecretRef = Field(
        description=(
            "A secret:// reference to the database's SQLAlchemy URL (PostgreSQL or MariaDB)."
        ),
        examples=["secret://erp/privacy-url"],
    )
    access: _SqlStatement | None = Field(
        default=None,
        description="A SELECT binding :subject, whose rows answer access and export requests.",
        examples=["SELECT id, name, email FROM customers WHERE lower(email) = :subject"],
    )
    erase: _SqlStatement | None = Field(
        default=None,
        description="One statement binding :subject that erases the person's data.",
        examples=["DELETE FROM customers WHERE lower(email) = :subject"],
    )
    rectify: _SqlStatement | None = Field(
        default=None,
        description="One statement binding :subject and the corrected fields by name (:name).",
        examples=["UPDATE customers SET name = :name WHERE lower(email) = :subject"],
    )

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

    webhook: WebhookConnector | None = Field(
        default=None, description="Requests sent as signed JSON to an HTTPS endpoint of the system."
    )
    sql: SqlConnector | None = Field(
        default=None, description="Requests answered by parameterised SQL on the system's database."
    )
    kinds: tuple[Annotated[str, StringConstraints(pattern=SUBJECT_KIND_PATTERN)], ...] = Field(
        default=(),
        description="The identifier kinds the system can look a person up by (default: any).",
        examples=[["email", "customer_id"]],
    )

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

    kind: Annotated[str, StringConstraints(pattern=SUBJECT_KIND_PATTERN)] = Field(
        description=(
            "The identifier's kind: email and phone are normalised; others "
            "(customer_id, ...) are compared as written, in Unicode NFC."
        )
    )
    in_: Literal["path", "query", "request", "response"] = Field(
        alias="in",
        description="Where the identifier is: path, query, request (body) or response (body).",
    )
    param: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")] | None = (
        Field(default=None, description="In path or query: the parameter's name.")
    )
    json_path: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = Field(
        default=None,
        alias="json",
        description=(
            "In a JSON body: an RFC 6901 JSON Pointer (/customer/email) or RFC 9535 "
            "JSONPath ($.lines[*].email)."
        ),
    )
    csv_column: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        default=None, description="In a CSV body: the column's header.", examples=["email"]
    )
    xml: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = Field(
        default=None,
        description="In an XML body: an ElementTree path such as ./customer/email.",
        examples=["./customer/email"],
    )
    received_by: Literal["upstream", "caller", "both"] | None = Field(
        default=None,
        description=(
            "Who receives data about that person: upstream, caller or both (default "
            "by place: request upstream, response caller, parameters both)."
        ),
    )
    region: Country | None = Field(
        default=None,
        description=(
            "For phone numbers: the country whose national numbers are written "
            "without a country code."
        ),
    )

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

    database: SecretRef = Field(
        description=(
            "A secret:// reference to the SQLAlchemy URL of the database holding the view."
        ),
        examples=["secret://catalogue/readonly-url"],
    )
    view: Annotated[str, StringConstraints(pattern=_SQL_VIEW)] = Field(
        description="The read-only view (or schema.view) queried."
    )
    column: Annotated[str, StringConstraints(pattern=_SQL_NAME)] = Field(
        description="The view's column compared with the value."
    )
    value: Annotated[str, StringConstraints(pattern=_RULE_VALUE)] = Field(
        description=(
            "Where the value comes from: body:customer.id (body:lines[].sku checks "
            "each item), path:id or query:customer."
        )
    )
    message: Text = Field(description="What the caller is told when no row matches.")
    optional: bool = Field(
        default=False,
        description=(
            "The value may be absent (the rule is then skipped); never null, a list or an object."
        ),
    )

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

    destination: Country = Field(description="ISO 3166-1 country the data is transferred to.")
    safeguard: Safeguard = Field(
        description=(
            "adequacy (Art. 45), SCC (Art. 46(2)(c)), BCR (Art. 47) or derogation (Art. 49)."
        )
    )
    dpf_certified: bool = Field(
        default=False,
        description=(
            "The US recipient is certified under the EU-US Data Privacy Framework "
            "(needed for adequacy to the US)."
        ),
    )
    derogation: Derogation | None = Field(
        default=None,
        description=(
            "With safeguard: derogation, the Art. 49(1) point relied on: a-g or "
            "second_subparagraph."
        ),
    )

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

    name: Text = Field(description="The name of the person or body.")
    contact: Text = Field(description="How to reach them: an address, e-mail or telephone number.")
    country: Country | None = Field(
        default=None,
        description=(
            "ISO 3166-1 country of establishment (a controller outside the EEA needs "
            "a representative in the Union, Art. 27)."
        ),
    )


class Organisation(_Model):
    """Who is responsible for the processing: the controller, its representative, its DPO.

    GDPR Art. 30(1)(a): the name and contact details of the controller and,
    where applicable, the joint controller, the controller's representative
    (Art. 27) and the data protection officer (Art. 37).
    """

    controller: Party = Field(
        description=(
            "The controller: the body that decides why and how personal data is processed."
        )
    )
    representative: Party | None = Field(
        default=None,
        description=(
            "The controller's representative in the Union, when it is established "
            "outside the EEA (Art. 27)."
        ),
    )
    dpo: Party | None = Field(default=None, description="The data protection officer (Art. 37).")


class Integration(_Model):
    """One data flow from a source to a target system, with its GDPR facts and routes."""

    type: IntegrationType | None = Field(
        default=None,
        description=(
            "The kind of integration (interlock check adds its type's mitigations); "
            "default: rest when it has routes, otherwise unknown."
        ),
    )
    source: Name = Field(description="The system the data comes from (a name under systems).")
    target: Name = Field(description="The system the data goes to (a name under systems).")
    client: Name = Field(
        description="The client that calls the integration's routes (a name under clients)."
    )
    callers: tuple[Name, ...] = Field(
        default=(),
        description=(
            "Other clients that may call this integration's routes; a client holding "
            "the scope but not named here is refused."
        ),
    )
    purpose: Text = Field(
        description=(
            "Why the data flows (GDPR Art. 5(1)(b), purpose limitation); shown in the register."
        )
    )
    legal_basis: LegalBasis = Field(description="The GDPR Art. 6(1) basis of the processing.")
    data_categories: tuple[DataCategory, ...] = Field(
        default=(),
        description="The fideslang data categories the flow carries, e.g. user.contact.email.",
    )
    data_subjects: tuple[DataSubject, ...] = Field(
        default=(), description="The fideslang data subjects the data is about, e.g. customer."
    )
    retention: Duration = Field(
        description="How long the target keeps the data (a duration such as 90d or P1Y)."
    )
    transfer: Transfer | None = Field(
        default=None,
        description=(
            "A transfer of personal data to a third country and its safeguard (GDPR Chapter V)."
        ),
    )
    role: ProcessingRole = Field(
        default="controller",
        description="The deployment's role in this processing (GDPR Art. 4(7), 4(8), 26).",
    )
    other_party: Text | None = Field(
        default=None,
        description=(
            "For a processor or joint controller: the controller, or the joint controller."
        ),
        examples=["Example Holding AG, privacy@example-holding.de"],
    )
    recipients: tuple[Text, ...] = Field(
        default=(), description="Recipients of the data beyond the target system (Art. 30(1)(d))."
    )
    security_measures: tuple[Text, ...] = Field(
        default=(),
        description=("Measures beyond the configured controls, for the register (Art. 30(1)(g))."),
        examples=[["pseudonymised before export"]],
    )
    special_category_condition: SpecialCategoryCondition | None = Field(
        default=None,
        description="The Art. 9(2) condition under which special-category data is processed.",
    )
    criminal_data_basis: Text | None = Field(
        default=None,
        description=(
            "The Art. 10 basis for processing data about criminal convictions and offences."
        ),
        examples=["Art. 10 GDPR with section 26 BDSG (background checks)"],
    )
    audit: Literal["required", "best_effort"] | None = Field(
        default=None,
        description=(
            "required: answer 503 rather than release data whose audit entry cannot "
            "be made durable; best_effort: record without waiting. Default: required "
            "when the flow carries personal data (user.*)."
        ),
    )
    subjects: tuple[SubjectLocator, ...] = Field(
        default=(),
        description=(
            "Where data-subject identifiers appear in every route of the integration "
            "(each route adds its own)."
        ),
    )
    routes: tuple[Route, ...] = Field(
        default=(), description="The paths the gateway serves for this integration."
    )
    messaging: MessagingSpec | None = Field(
        default=None,
        description=(
            "type: messaging: the broker, destination, consumers and protection of "
            "its messages (docs/messaging.md)."
        ),
    )
    events: EventsSpec | None = Field(
        default=None,
        description=(
            "type: event_streaming: subjects, compatibility modes and per-consumer "
            "grants (docs/events.md)."
        ),
    )
    files: FilesSpec | None = Field(
        default=None,
        description=(
            "type: file_transfer or b2b_edi: the partner, transport, schedule and the"
            " checks each file passes in quarantine (docs/files.md)."
        ),
    )
    database: DatabaseSpec | None = Field(
        default=None,
        description=(
            "type: shared_database: the database system and each consumer's views "
            "(docs/databases.md)."
        ),
    )

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

    def caller_of(self, upstream: str) -> str:
        """The system on the calling side of a route that forwards to ``upstream``.

        The integration's other end: its source when ``upstream`` is its target,
        else its target. It receives the route's responses (a locator's
        ``received_by: caller``).
        """
        return self.source if upstream == self.target else self.target

    @property
    def personal(self) -> bool:
        """Whether the flow carries personal data: a ``user.*`` category (fideslang)."""
        return any(category.startswith("user") for category in self.data_categories)

    @property
    def audit_required(self) -> bool:
        """Whether a forwarded request waits for its durable audit entry (fail closed)."""
        if self.audit is not None:
            return self.audit == "required"
        return self.personal


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

    issuer: HttpsUrl = Field(
        description="The issuer's identifier (its iss claim), an https:// URL."
    )
    jwks_uri: HttpsUrl | None = Field(
        default=None,
        description=(
            "Where the issuer's keys are fetched, over verified TLS (give this or jwks_file)."
        ),
    )
    jwks_file: str | None = Field(
        default=None,
        description="A file holding the issuer's keys (give this or jwks_uri).",
        examples=["keys/keycloak-jwks.json"],
    )
    ca: TrustAnchor = Field(
        default="system",
        description="What the jwks_uri's TLS certificate must chain to, as for systems.",
    )
    audiences: tuple[Annotated[str, StringConstraints(min_length=1)], ...] = Field(
        min_length=1,
        description="Tokens must be for one of these audiences.",
        examples=[["https://interlock.example.com"]],
    )
    algorithms: tuple[Literal["ES256", "ES384", "Ed25519", "PS256", "RS256"], ...] = Field(
        default=("ES256", "RS256"),
        min_length=1,
        description="The issuer's signature algorithms (RFC 8725 §3.1); never none or HMAC.",
    )
    token_types: tuple[Literal["at+jwt", "JWT"], ...] = Field(
        default=("at+jwt",),
        description=(
            "Accepted token types (typ): at+jwt (RFC 9068); JWT for Keycloak and Entra ID."
        ),
    )
    client_claim: Literal["client_id", "azp", "appid", "sub"] = Field(
        default="client_id", description="The claim that names the calling client."
    )
    clients: dict[Annotated[str, StringConstraints(min_length=1, max_length=256)], Name] = Field(
        min_length=1,
        description="The issuer's client ids -> manifest clients; no other client gets in.",
        examples=[{"erp-service": "order-sync"}],
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

    @field_validator("issuer")
    @classmethod
    def _issuer_https(cls, value: str) -> str:
        # RFC 8414 §2: the issuer identifier is https, with no query or fragment.
        return check_https_url(value, why="keys fetched without TLS can be replaced", query=False)

    @field_validator("jwks_uri")
    @classmethod
    def _jwks_https(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return check_https_url(value, why="keys fetched without TLS can be replaced")

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

    version: Literal[1] = Field(description="The manifest format's version; 1 is the only one.")
    tls: TlsPolicy = Field(
        default=TlsPolicy(),
        description="Minimum TLS version for every connection Interlock makes or accepts.",
    )
    organisation: Organisation | None = Field(
        default=None,
        description=(
            "Who is responsible for the processing (GDPR Art. 30(1)(a)): controller, "
            "representative, DPO."
        ),
    )
    systems: dict[Name, System] = Field(
        default_factory=dict,
        description=(
            "The connected systems, by name: where each is, who owns it, how to trust and reach it."
        ),
    )
    roles: dict[Name, Role] = Field(
        default_factory=dict, description="Named sets of scopes that clients and operators hold."
    )
    clients: dict[Name, Client] = Field(
        default_factory=dict,
        description=("Service accounts, by name: how each authenticates and which roles it holds."),
    )
    integrations: dict[Name, Integration] = Field(
        default_factory=dict,
        description=(
            "Data flows from a source to a target system, each with its GDPR facts and routes."
        ),
    )
    trusted_issuers: dict[Name, TrustedIssuer] = Field(
        default_factory=dict,
        description=(
            "External OAuth 2.0 issuers (Keycloak, Entra ID, ...) whose access tokens are accepted."
        ),
    )
    rules: dict[RuleName, SqlRule] = Field(
        default_factory=dict,
        description=(
            "Business rules answered by read-only SQL views (Python rules come from entry points)."
        ),
    )
    shared_scopes: tuple[Scope, ...] = Field(
        default=(),
        description=(
            "Scopes that clients of several integrations may hold (declared, never implied)."
        ),
    )
    brokers: dict[Name, Broker] = Field(
        default_factory=dict,
        description=(
            "Message brokers (RabbitMQ, NATS JetStream) of messaging and "
            "event-streaming integrations."
        ),
    )
    partners: dict[Name, Partner] = Field(
        default_factory=dict, description="Trading partners of file-transfer and B2B integrations."
    )
    databases: dict[Name, DatabaseSystem] = Field(
        default_factory=dict, description="Database servers of shared-database integrations."
    )
    operators: dict[OperatorName, OperatorAccount] = Field(
        default_factory=dict,
        description=(
            "People who run the interlock command, by operating-system user name, and"
            " the roles they hold."
        ),
    )


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
    "schemas.admin",
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
