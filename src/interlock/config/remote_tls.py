"""Verified TLS, or the loopback interface: the rule for every database and Redis URL.

Interlock is given database and Redis URLs in several places: the settings'
store, audit and Redis URLs (:mod:`interlock.config.settings`), the privacy
SQL connector's and the validation rules' databases (URLs kept in the
vault). One rule applies to all of them, the one the manifest's
``databases:`` systems follow (:mod:`interlock.config.databases`):

* a server on the loopback interface (``127.0.0.0/8``, ``::1``,
  ``localhost``) or behind a Unix socket may be reached without TLS: its
  traffic never crosses a network;
* any other host is reached over TLS that verifies the server's certificate
  and host name, or the URL is refused before anything connects (CWE-319,
  CWE-295): PostgreSQL ``sslmode=verify-full`` (libpq's default, ``prefer``,
  verifies nothing and falls back to plaintext when a man in the middle
  declines TLS; ``require`` encrypts to whoever answers); MariaDB/MySQL
  ``ssl_ca=`` or ``ssl_capath=`` with ``ssl_check_hostname`` left on; Redis
  ``rediss://`` (``rediss+sentinel://``, ``rediss+cluster://``);
* the Redis query keys that turn verification off (``ssl_cert_reqs`` other
  than ``required``, ``ssl_check_hostname`` other than true,
  ``ssl_exclude_verify_flags``) are refused on every host: redis-py's own
  defaults verify, and no setting may switch that off.

The checks raise :class:`~interlock.errors.ConfigError` with one sentence
that names neither the URL nor its password; callers add which setting or
rule it was.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qs, urlsplit

from interlock.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = ["check_database_tls", "check_redis_tls", "is_loopback", "redis_hosts"]

# Where libpq and PyMySQL take a host besides the URL's own: each must be local too.
_QUERY_HOSTS: Final = ("host", "hostaddr", "unix_socket")
_TRUE: Final = frozenset({"true", "1", "yes", "on", "y", "t"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a Unix socket path or a loopback address (never a DNS name but
    ``localhost``: a name can be made to resolve elsewhere)."""
    if host.startswith("/") or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _database_is_local(url: URL) -> bool:
    """Whether every host the URL names is local (none at all: the driver's Unix socket)."""
    hosts = [url.host] if url.host else []
    for key in _QUERY_HOSTS:
        value = url.query.get(key)
        values = [value] if isinstance(value, str) else list(value or ())
        # libpq takes a comma-separated list of hosts to try in turn.
        hosts.extend(part.strip() for item in values for part in item.split(","))
    return all(is_loopback(host) for host in hosts)


def check_database_tls(url: URL) -> None:
    """Refuse a SQLAlchemy URL that would reach another host without verified TLS."""
    if _database_is_local(url):
        return
    backend = url.get_backend_name()
    if backend == "postgresql":
        if url.query.get("sslmode") != "verify-full":
            raise ConfigError(
                "a PostgreSQL database on another host needs sslmode=verify-full in its URL: "
                "without it the connection may be read or taken over on the network (CWE-319)"
            )
        return
    if backend in {"mysql", "mariadb"}:
        if not (url.query.get("ssl_ca") or url.query.get("ssl_capath")):
            raise ConfigError(
                "a MariaDB/MySQL database on another host needs ssl_ca= (a CA file) in its URL: "
                "without TLS the connection may be read or taken over on the network (CWE-319)"
            )
        if str(url.query.get("ssl_check_hostname", "true")).lower() not in _TRUE:
            raise ConfigError("ssl_check_hostname must stay on for a database on another host")
        return
    raise ConfigError(
        f"a {backend} database on another host is refused: Interlock verifies TLS only for "
        "PostgreSQL and MariaDB/MySQL (CWE-319)"
    )


def redis_hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    """``host:port,host:port`` (``[v6]:port``) as pairs; a ConfigError naming the bad one."""
    found = []
    for raw in netloc.rpartition("@")[2].split(","):
        item = raw.strip()
        if item.startswith("["):  # [v6] or [v6]:port
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            host, _, port = item.partition(":")
        if not host or (port and not port.isdigit()):
            raise ConfigError(f"{item!r} is not HOST:PORT")
        found.append((host, int(port) if port else default_port))
    return found


def check_redis_tls(url: str) -> None:
    """Refuse a Redis URL that turns verification off, or reaches another host in plaintext."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    if any(value != "required" for value in query.get("ssl_cert_reqs", ())):
        raise ConfigError(
            "ssl_cert_reqs may only be required: the server's certificate is verified"
        )
    if any(value.lower() not in _TRUE for value in query.get("ssl_check_hostname", ())):
        raise ConfigError("ssl_check_hostname must stay on: the server's host name is verified")
    if "ssl_exclude_verify_flags" in query:
        raise ConfigError("ssl_exclude_verify_flags is refused: it weakens certificate checks")
    scheme = parts.scheme.lower()
    if scheme.startswith("rediss") or scheme == "unix":
        return
    if "+" in scheme:  # Sentinel or Cluster: several hosts
        hosts = [host for host, _ in redis_hosts(parts.netloc, 0)]
    else:
        hosts = [parts.hostname or "localhost"]  # redis-py's default host
    if not all(is_loopback(host) for host in hosts):
        raise ConfigError(
            "Redis on another host needs TLS: use rediss:// (rediss+sentinel://, "
            f"rediss+cluster://); {scheme}:// is plaintext (CWE-319)"
        )
