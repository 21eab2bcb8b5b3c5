"""Deployment settings, read from ``INTERLOCK_*`` environment variables.

Settings say *where* things are (data directory, databases, Redis) and how to
log; *what* is connected lives in the manifest. No setting holds a secret: a
database URL with a password in it is refused, because environment variables
leak into process listings, crash reports and child processes. Use the
database's own mechanisms instead (a ``.pgpass`` file, peer or certificate
authentication) until the vault can supply credentials. A database or Redis
on another host is reached over verified TLS or the URL is refused at load
(:mod:`interlock.config.remote_tls`): ``sslmode=verify-full``, ``rediss://``.
"""

from __future__ import annotations

from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from interlock.config.remote_tls import check_database_tls, check_redis_tls
from interlock.config.units import Rate, RateValue
from interlock.config.urls import credential_in_url
from interlock.errors import ConfigError
from interlock.proofs.errors import CheckpointError

# SQLAlchemy (~0.4 s) and the cosignature verifier (the crypto package, ~0.1 s) are
# imported by the validators that need them: every ``interlock`` command imports
# this module (through interlock.logs), most never see a database URL.

__all__ = ["LogFormat", "LogLevel", "Settings", "load_settings"]

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["auto", "json", "console"]

KEYRING_FILE = "keyring.json"
# An HSM-backed keyring's id (not secret); its KEKs stay in the token.
KEYRING_REF_FILE = "keyring.pkcs11.json"
STORE_FILE = "interlock.db"
AUDIT_FILE = "audit.db"
# redis-py's own schemes, and the Sentinel and Cluster forms of store.redis_client.
_REDIS_SCHEMES = frozenset(
    {
        "redis",
        "rediss",
        "unix",
        "redis+sentinel",
        "rediss+sentinel",
        "redis+cluster",
        "rediss+cluster",
    }
)


class Settings(BaseSettings):
    """Where Interlock keeps its state and how it logs.

    Every field can be set as ``INTERLOCK_<FIELD>`` (e.g. ``INTERLOCK_DATA_DIR``).
    """

    model_config = SettingsConfigDict(
        env_prefix="INTERLOCK_", extra="ignore", frozen=True, validate_default=True
    )

    data_dir: Path = Field(
        default=Path(".interlock"),
        description="Directory for the keyring and the embedded databases (created 0700).",
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the main store; default: SQLite file in the data dir. "
            "Another host than loopback needs sslmode=verify-full."
        ),
    )
    audit_database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the audit log; default: its own SQLite file. "
            "Another host than loopback needs sslmode=verify-full."
        ),
    )
    manifest: Path = Field(
        default=Path("interlock.yaml"), description="The manifest the gateway serves."
    )
    manifest_source: Literal["file", "store"] = Field(
        default="file",
        description=(
            "Where serve reads the manifest: file (INTERLOCK_MANIFEST, reloaded on SIGHUP) or "
            "store (the current version published by `interlock manifest apply`, followed "
            "while serving; see docs/scale.md)."
        ),
    )
    manifest_poll_seconds: float = Field(
        default=2.0,
        ge=0.1,
        le=60,
        description="With manifest_source=store: how often a replica asks for the current version.",
    )
    manifest_max_stale_seconds: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description=(
            "With manifest_source=store: a replica that could not confirm the current version "
            "for this long answers 503 (not ready) instead of enforcing a possibly old one."
        ),
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=256,
        description=(
            "Gateway processes sharing one listener (serve --reuse-port). Without Redis each "
            "keeps limits of its own: see INTERLOCK_LOCAL_LIMITS and docs/scale.md."
        ),
    )
    local_limits: Literal["refuse", "divide"] = Field(
        default="refuse",
        description=(
            "Several workers without Redis: refuse (serve does not start) or divide (each "
            "worker enforces budget / INTERLOCK_WORKERS, a warning is logged)."
        ),
    )
    blocking_threads: int = Field(
        default=16,
        ge=1,
        le=512,
        description=(
            "Threads that run the gateway's blocking calls (store, Redis, vault) in serve."
        ),
    )
    blocking_queue: int = Field(
        default=256,
        ge=0,
        le=100_000,
        description=(
            "Blocking calls of requests that may wait for a thread; beyond, a request is "
            "answered 503 with Retry-After at once (back-pressure, not an unbounded queue)."
        ),
    )
    audit_origin: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,199}$",
        description=(
            "Origin line (and key name) of the audit log's checkpoints; fixed for the log's "
            "life. Default: TRUST_DOMAIN/audit."
        ),
    )
    audit_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="How long recording an audit entry may take before the request fails closed.",
    )
    audit_checkpoint_seconds: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description=(
            "A running gateway appends an audit.tree_head entry, and so signs a new tree head, "
            "when no tree head has been signed for this long (0: only per committed batch)."
        ),
    )
    audit_witness_file: Path | None = Field(
        default=None, description="A file that receives a copy of every new audit tree head."
    )
    audit_witness_url: str | None = Field(
        default=None,
        description="A C2SP tlog-witness (https://) that receives every new audit tree head.",
    )
    audit_witness_ca: Path | None = Field(
        default=None, description="CA bundle to verify the witness's TLS certificate."
    )
    audit_witness_key: str | None = Field(
        default=None,
        description=(
            "The witness's cosigning key (C2SP verifier key, name+hexid+base64key); "
            "required with INTERLOCK_AUDIT_WITNESS_URL: every answer must carry its cosignature."
        ),
    )
    audit_pseudonymise_ip: bool = Field(
        default=True,
        description="Store client IP addresses in the audit log as keyed pseudonyms only.",
    )
    redis_url: str | None = Field(
        default=None,
        description=(
            "Redis for shared limits and replay state (optional); another host than "
            "loopback needs rediss:// (verified TLS)."
        ),
    )
    rate_limit_failure: Literal["closed", "open"] = Field(
        default="closed",
        description=(
            "When Redis cannot be reached for a rate-limit decision: closed (503) or open "
            "(fall back to in-process limits)."
        ),
    )
    # NoDecode: "50/min" is text for the rate parser, not JSON.
    auth_failures_per_ip: Annotated[RateValue, NoDecode] = Field(
        default=Rate(50, timedelta(minutes=1)),
        description=(
            "Failed authentications one address may make (token endpoint and gateway "
            "together) before its attempts get 429 until the budget refills."
        ),
    )
    # NoDecode: a comma-separated list of networks, not JSON.
    trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = Field(
        default=(),
        description=(
            "Networks (CIDR, comma-separated) of the load balancers or proxies in front of the "
            "gateway; only their connections may report the caller's address "
            "(INTERLOCK_TRUSTED_PROXY_HEADER). Default: none, the caller is the TCP peer."
        ),
    )
    trusted_proxy_header: Literal["x-forwarded-for", "forwarded"] = Field(
        default="x-forwarded-for",
        description=(
            "The one header the trusted proxies write the caller's address in: "
            "x-forwarded-for or forwarded (RFC 7239). The other is never read."
        ),
    )
    proxy_protocol: Literal["off", "v2"] = Field(
        default="off",
        description=(
            "v2: connections from INTERLOCK_TRUSTED_PROXIES must start with a PROXY protocol "
            "v2 header giving the client's address (TCP balancers in TLS passthrough mode)."
        ),
    )
    log_level: LogLevel = "info"
    log_format: LogFormat = Field(
        default="auto", description="auto: JSON unless standard error is a terminal."
    )
    metrics_listen: str = Field(
        default="127.0.0.1:9464",
        description=(
            "HOST:PORT of the Prometheus metrics listener, or off. Loopback addresses serve "
            "plain HTTP; any other serves TLS with the gateway listener's certificate. The "
            "gateway's own listener never serves /metrics."
        ),
    )
    public_url: str | None = Field(
        default=None,
        description=(
            "The gateway's URL as clients reach it (https://...); the OAuth issuer. Give the "
            "same one to every replica behind a load balancer. Default: the listener's address."
        ),
    )
    trust_domain: str = Field(
        default="interlock.local",
        pattern=r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$",
        description=(
            "SPIFFE trust domain of the identities the PKI issues: "
            "spiffe://TRUST-DOMAIN/client/NAME."
        ),
    )
    oauth_signing_alg: Literal["ES256", "Ed25519", "RS256"] = Field(
        default="ES256", description="Algorithm of new token-signing keys."
    )
    oauth_token_lifetime_seconds: int = Field(
        default=600, ge=1, le=3600, description="Access-token lifetime (at most one hour)."
    )
    kek_backend: Literal["file", "pkcs11"] = Field(
        default="file",
        description=(
            "Where the root key-encryption key lives: file (keyring.json in the data dir) or "
            "pkcs11 (an HSM token; see docs/hsm.md)."
        ),
    )
    pkcs11_module: Path | None = Field(
        default=None, description="PKCS#11 module (.so) of the HSM, for kek_backend=pkcs11."
    )
    pkcs11_token_label: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="Label of the HSM token holding the KEKs, for kek_backend=pkcs11.",
    )
    pkcs11_pin_file: Path | None = Field(
        default=None,
        description=(
            "File holding the token's user PIN (a regular file, mode 0600 or stricter); the "
            "PIN itself is never a setting."
        ),
    )
    # The listener's connections (issue 18 item 5: slowloris). See docs/operations.md.
    listener_first_byte_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description=(
            "How long a new connection may take to complete its TLS handshake, and then to "
            "send the first byte of a request, before it is closed."
        ),
    )
    listener_headers_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description=(
            "How long a request's line and headers may take to arrive, counted from their "
            "first byte, before the connection is closed (however slowly bytes keep coming)."
        ),
    )
    listener_keepalive_seconds: float = Field(
        default=75.0,
        gt=0,
        le=3600,
        description=(
            "How long a kept-alive connection may stay idle between requests. Keep it above "
            "the idle timeout of a load balancer in front (60 s on many)."
        ),
    )
    listener_max_connections: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="Open connections one gateway process accepts; more are answered 503.",
    )
    listener_max_connections_per_address: int = Field(
        default=100,
        ge=1,
        le=1_000_000,
        description=(
            "Open connections one client address may hold; more are answered 503. Behind a "
            "load balancer every client shares its address: raise this accordingly."
        ),
    )
    missing_secrets: Literal["refuse", "start"] = Field(
        default="refuse",
        description=(
            "When the manifest names secret:// values the vault lacks: refuse (serve does not "
            "start, and a reload is refused) or start (log each one; the routes that need "
            "them answer 503 until the value is stored)."
        ),
    )
    oauth_dpop_nonce: bool = Field(
        default=False,
        description="Require server-issued nonces in DPoP proofs (RFC 9449 §8, §9).",
    )

    @model_validator(mode="after")
    def _pkcs11_complete(self) -> Settings:
        if self.kek_backend == "pkcs11":
            missing = [
                f"INTERLOCK_{name.upper()}"
                for name in ("pkcs11_module", "pkcs11_token_label", "pkcs11_pin_file")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(f"kek_backend=pkcs11 needs {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _proxy_protocol_from_someone(self) -> Settings:
        if self.proxy_protocol != "off" and not self.trusted_proxies:
            raise ValueError(
                "INTERLOCK_PROXY_PROTOCOL needs INTERLOCK_TRUSTED_PROXIES: it is accepted only "
                "from the proxies named there"
            )
        return self

    @model_validator(mode="after")
    def _witness_key_given(self) -> Settings:
        if self.audit_witness_url is not None and self.audit_witness_key is None:
            raise ValueError(
                "INTERLOCK_AUDIT_WITNESS_URL needs INTERLOCK_AUDIT_WITNESS_KEY, the witness's "
                "cosigning key: an answer that cannot be verified proves nothing"
            )
        return self

    @field_validator("audit_witness_key")
    @classmethod
    def _witness_key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from interlock.proofs.cosignature import CosignatureVerifier

        try:
            return CosignatureVerifier.parse(value).vkey
        except CheckpointError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("public_url")
    @classmethod
    def _public_https(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _refuse_secret_in_url(value, user=False, hint="scheme, host and port only")
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("must be an https:// URL with a host")
        if parts.path not in {"", "/"} or parts.query or parts.fragment or parts.username:
            raise ValueError("must be scheme, host and port only, e.g. https://gw.example:8443")
        return value.rstrip("/")

    @field_validator("metrics_listen")
    @classmethod
    def _metrics_address(cls, value: str) -> str:
        value = value.strip()
        if value.lower() == "off":
            return "off"
        _split_address(value)
        return value

    @field_validator("audit_witness_url")
    @classmethod
    def _witness_https(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
            raise ValueError("must be an https:// URL with a host and no credentials")
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        networks = []
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            try:
                network = ip_network(item)  # strict: host bits set is a typo, not a network
            except ValueError:
                raise ValueError(
                    "each entry must be a network such as 10.0.0.0/8 or 192.0.2.5/32 "
                    "(no host bits set after the prefix)"
                ) from None
            networks.append(network)
        return tuple(networks)

    @field_validator("trusted_proxies")
    @classmethod
    def _not_everyone(
        cls, value: tuple[IPv4Network | IPv6Network, ...]
    ) -> tuple[IPv4Network | IPv6Network, ...]:
        if any(network.prefixlen == 0 for network in value):
            # CWE-348: trusting every peer lets any caller write its own address.
            raise ValueError("a /0 network trusts every address, so any caller could pick its own")
        return value

    @field_validator("trusted_proxy_header", "proxy_protocol", mode="before")
    @classmethod
    def _header_lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        # Several hosts (Sentinel, Cluster: host:port,host:port) are no SQLAlchemy URL.
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme.lower() not in _REDIS_SCHEMES:
            raise ValueError(f"the scheme must be one of {', '.join(sorted(_REDIS_SCHEMES))}")
        _refuse_secret_in_url(value)
        userinfo = parts.netloc.rpartition("@")[0]
        if ":" in userinfo:  # refused without echoing the URL: it contains the password
            raise ValueError(
                "the URL contains a password; secrets are never accepted in settings "
                "(use Redis ACLs with TLS client certificates)"
            )
        try:
            check_redis_tls(value)
        except ConfigError as refused:
            raise ValueError(refused.message) from None
        return value

    @field_validator("database_url", "audit_database_url")
    @classmethod
    def _no_password_and_verified_tls(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("not a valid database URL") from None
        _refuse_secret_in_url(value)
        if url.password:
            # Refuse without echoing the URL: it contains the password.
            raise ValueError(
                "the URL contains a password; secrets are never accepted in settings "
                "(use .pgpass, peer or certificate authentication)"
            )
        try:
            check_database_tls(url)
        except ConfigError as refused:
            raise ValueError(refused.message) from None
        return value

    @property
    def keyring_path(self) -> Path:
        """The root key-encryption key file."""
        return self.data_dir / KEYRING_FILE

    @property
    def keyring_ref_path(self) -> Path:
        """For kek_backend=pkcs11: the file naming the keyring whose KEKs are in the token."""
        return self.data_dir / KEYRING_REF_FILE

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """Where the metrics listener binds (host without brackets, port); None: off."""
        if self.metrics_listen == "off":
            return None
        return _split_address(self.metrics_listen)

    @property
    def store_url(self) -> str:
        """The main store's URL, defaulting to SQLite in the data directory."""
        return self.database_url or _sqlite_url(self.data_dir / STORE_FILE)

    @property
    def audit_url(self) -> str:
        """The audit log's URL, defaulting to its own SQLite file."""
        return self.audit_database_url or _sqlite_url(self.data_dir / AUDIT_FILE)


def _refuse_secret_in_url(
    value: str,
    *,
    user: bool = True,
    hint: str = "use .pgpass, peer or certificate authentication, or Redis ACLs with TLS "
    "client certificates",
) -> None:
    """Refuse a URL holding a password: in its userinfo, or in a query parameter the driver
    reads as one (libpq's ``password``/``sslpassword``, PyMySQL's ``passwd``, redis-py's
    ``password``; any ``token``, ``secret``...). The message never holds the URL.

    ``user``: a user name alone is allowed (a database role).
    """
    found = credential_in_url(value, user=user)
    if found is not None:
        raise ValueError(
            f"the URL contains {found}; secrets are never accepted in settings ({hint})"
        )


def _split_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as (host, port); ValueError if it is not one."""
    host, _, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ValueError("must be HOST:PORT (e.g. 127.0.0.1:9464) or off")
    return host, int(port)


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.expanduser().absolute()}"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, applying explicit overrides.

    Raises :class:`ConfigError` with one line per invalid variable, naming the
    variable and never its value.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"INTERLOCK_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors(include_input=False)
        )
        raise ConfigError(f"invalid settings: {problems}") from None
