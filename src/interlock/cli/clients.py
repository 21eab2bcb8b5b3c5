"""``interlock clients``: OAuth clients — secrets (shown once) and public keys (private_key_jwt)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from interlock.cli import completion
from interlock.cli.context import settings
from interlock.cli.evidence import note_result
from interlock.cli.options import ManifestOption, duration_option
from interlock.cli.output import Col, JsonOption, iso, print_json, print_table, table, when
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.crypto.keyfile import read_small_file
from interlock.errors import InvalidRequestError, NotFoundError
from interlock.identity.client_keys import ClientKeyInfo, ClientKeys
from interlock.identity.client_secrets import (
    DEFAULT_LIFETIME,
    DEFAULT_OVERLAP,
    ClientSecretInfo,
    ClientSecrets,
    secret_id_of,
)
from interlock.identity.grants import Grants
from interlock.identity.public_keys import jwk_from_pem
from interlock.store import Deployment, open_deployment

if TYPE_CHECKING:
    from interlock.cli.kill_switch import Ended

# The kill switch (Redis, the PKI, the vault's policy) is imported by `clients revoke`.

__all__ = ["app"]

MAX_KEY_FILE_BYTES: Final = 65536

app = typer.Typer(
    help="OAuth 2.0 clients: secrets (shown once) and public keys for private_key_jwt.",
    no_args_is_help=True,
)

LifetimeOption = Annotated[
    str | None,
    typer.Option(
        "--lifetime",
        help="e.g. 180d or P180D (default: 180d for a secret, no expiry for a key).",
        show_default=False,
    ),
]


@dataclass(frozen=True)
class _Clients:
    deployment: Deployment
    manifest: Manifest
    secrets: ClientSecrets
    keys: ClientKeys


@contextmanager
def _open(manifest: Path | None) -> Iterator[_Clients]:
    current = settings()
    deployment = open_deployment(current)
    try:
        loaded = load_manifest(manifest or current.manifest)
        yield _Clients(
            deployment,
            loaded,
            ClientSecrets(deployment.engine, deployment.keyring, loaded),
            ClientKeys(deployment.engine, deployment.keyring, loaded),
        )
    finally:
        deployment.close()


def _when(value: datetime | None) -> str:
    return when(value, "never")


def _until(value: datetime | None) -> str:
    return "no expiry" if value is None else f"{value:%Y-%m-%d %H:%M}"


def _read_public_key(path: Path) -> dict[str, Any]:
    """A JWK from a JSON file, or from a PEM public key (converted by joserfc)."""
    data = read_small_file(path, MAX_KEY_FILE_BYTES)
    if data.lstrip().startswith(b"-----BEGIN"):
        return jwk_from_pem(data)
    try:
        document = json.loads(data)
    except ValueError:
        raise InvalidRequestError(f"{path} is neither a JWK (JSON) nor a PEM public key") from None
    if not isinstance(document, dict):
        raise InvalidRequestError(f"{path} does not hold a JWK (a JSON object)")
    if "keys" in document:
        raise InvalidRequestError(f"{path} is a key set; give one JWK per registration")
    return document


def _issue_secret(clients: _Clients, client: str, lifetime: timedelta) -> None:
    secret_id, value = clients.secrets.create(client, lifetime)
    _show_secret(clients, client, secret_id, value)


def _show_secret(clients: _Clients, client: str, secret_id: str, value: str) -> None:
    # The secret alone goes to standard output; everything else to standard error.
    expires = next(s.expires_at for s in clients.secrets.list_secrets(client) if s.id == secret_id)
    typer.echo(f"secret id {secret_id} for client {client}; shown once", err=True)
    typer.echo(f"expires   {_when(expires)}", err=True)
    typer.echo("Store it in the client's secret store now; it cannot be shown again.", err=True)
    typer.echo(value)


@app.command("create")
def create(
    client: Annotated[
        str,
        typer.Argument(
            help="A client whose auth includes oauth2.",
            autocompletion=completion.oauth_client_names,
        ),
    ],
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="Register this public key (JWK JSON or PEM) for private_key_jwt "
            "instead of issuing a secret.",
            show_default=False,
        ),
    ] = None,
    lifetime: LifetimeOption = None,
    manifest: ManifestOption = None,
) -> None:
    """Issue a secret (printed once on standard output), or register a public key (its kid)."""
    with _open(manifest) as clients:
        if public_key is None:
            _issue_secret(clients, client, duration_option(lifetime) or DEFAULT_LIFETIME)
            return
        jwk = _read_public_key(public_key)
        valid_for = duration_option(lifetime)
        expires_at = datetime.now(UTC) + valid_for if valid_for else None
        kid = clients.keys.register(client, jwk, use="assertion", expires_at=expires_at)
        info = next(k for k in clients.keys.list_keys(client, "assertion") if k.kid == kid)
        typer.echo(f"registered key for client {client}: {info.alg}", err=True)
        typer.echo(f"expires   {_when(info.expires_at)}", err=True)
        typer.echo(kid)


@app.command("create-secret")
def create_secret(
    client: Annotated[
        str,
        typer.Argument(
            help="A client whose auth includes oauth2.",
            autocompletion=completion.oauth_client_names,
        ),
    ],
    lifetime: LifetimeOption = None,
    manifest: ManifestOption = None,
) -> None:
    """Issue a secret, printed once on standard output (as create without --public-key)."""
    with _open(manifest) as clients:
        _issue_secret(clients, client, duration_option(lifetime) or DEFAULT_LIFETIME)


@app.command("rotate-secret")
def rotate_secret(
    client: Annotated[
        str,
        typer.Argument(
            help="A client whose auth includes oauth2.",
            autocompletion=completion.oauth_client_names,
        ),
    ],
    overlap: Annotated[
        str | None,
        typer.Option("--overlap", help="How long the previous secret stays valid (default 24h)."),
    ] = None,
    lifetime: LifetimeOption = None,
    manifest: ManifestOption = None,
) -> None:
    """Issue a new secret; the previous one keeps working for the overlap, older ones stop."""
    with _open(manifest) as clients:
        secret_id, value = clients.secrets.rotate(
            client,
            duration_option(overlap) or DEFAULT_OVERLAP,
            duration_option(lifetime) or DEFAULT_LIFETIME,
        )
        previous = [
            s for s in clients.secrets.list_secrets(client) if s.active and s.id != secret_id
        ]
        for info in previous:
            typer.echo(
                f"previous secret {info.id} stays valid until {_when(info.expires_at)}", err=True
            )
        if not previous:
            typer.echo("there was no active secret before this one", err=True)
        _show_secret(clients, client, secret_id, value)


@app.command("revoke")
def revoke(
    client: Annotated[
        str, typer.Argument(help="The client to cut off.", autocompletion=completion.client_names)
    ],
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            help="RFC 5280 reason for its certificates' CRL entries, e.g. keyCompromise.",
        ),
    ] = "unspecified",
    manifest: ManifestOption = None,
) -> None:
    """Kill switch: end everything that lets CLIENT in, on every replica within 2 s.

    Its client secrets, private_key_jwt keys, API keys and request-signature
    keys, its certificates from this PKI (on the CRL), every access token issued
    to it so far, and its vault grants. Says exactly what it ended.
    """
    from interlock.cli.kill_switch import end_client

    with _open(manifest) as clients:
        ended = end_client(clients.deployment, clients.manifest, client, reason)
        known = client in clients.manifest.clients
        if not known and ended.credentials == 0 and not ended.grants:
            raise NotFoundError.unknown(
                "client",
                client,
                clients.manifest.clients,
                where="in the manifest and nothing to revoke",
            )
        note_result(
            client_secrets=ended.client_secrets,
            private_key_jwt_keys=ended.assertion_keys,
            api_keys=ended.api_keys,
            signature_keys=ended.signature_keys,
            certificates=", ".join(ended.certificates) or "none",
            tokens_issued_until=ended.tokens_issued_until.isoformat(),
            vault_grants=", ".join(g.pattern for g in ended.grants) or "none",
        )
        for line in _ended_lines(ended):
            typer.echo(line)
        for line in _still_open(clients.manifest, client):
            typer.echo(line, err=True)


def _ended_lines(ended: Ended) -> list[str]:
    serials = f": {', '.join(ended.certificates)}" if ended.certificates else ""
    until = f"{ended.tokens_issued_until:%Y-%m-%d %H:%M:%S} UTC"
    grants = ", ".join(f"{g.pattern} ({','.join(sorted(g.capabilities))})" for g in ended.grants)
    return [
        f"ended for client {ended.client}:",
        f"  client secrets         {ended.client_secrets}",
        f"  private_key_jwt keys   {ended.assertion_keys}",
        f"  API keys               {ended.api_keys}",
        f"  signature keys         {ended.signature_keys}",
        f"  certificates (on CRL)  {len(ended.certificates)}{serials}",
        f"  access tokens          every one issued up to {until}",
        f"  vault grants           {len(ended.grants)}{f': {grants}' if grants else ''}",
        "Every replica sharing the store refuses them within 2 s (at once for tokens with Redis).",
    ]


def _still_open(manifest: Manifest, client: str) -> list[str]:
    """What the kill switch cannot reach, so the operator knows what is left to do."""
    notes = [
        "Certificates from a CA other than this PKI (serve --client-ca) must be revoked there."
    ]
    issuers = [n for n, i in manifest.trusted_issuers.items() if client in i.clients.values()]
    if issuers:
        notes.append(
            f"Tokens {', '.join(issuers)} issues to it from now on are still accepted: remove "
            "it from that issuer's clients in the manifest, or disable it at the issuer."
        )
    if client in manifest.clients:
        notes.append(
            "It stays in the manifest: new credentials issued to it would work; remove it "
            "from the manifest to keep it out for good."
        )
    return notes


@app.command("revoke-key")
def revoke_key(
    kid: Annotated[
        str,
        typer.Argument(
            help="The key's kid (RFC 7638 thumbprint); put -- before one that starts with '-'."
        ),
    ],
    manifest: ManifestOption = None,
) -> None:
    """Revoke one registered public key at once."""
    with _open(manifest) as clients:
        info = clients.keys.revoke(kid, "assertion")
        typer.echo(f"revoked key {info.kid} (client {info.client})")


@app.command("revoke-secret")
def revoke_secret(
    secret: Annotated[str, typer.Argument(help="The secret's id, or the secret itself.")],
    manifest: ManifestOption = None,
) -> None:
    """Revoke one client secret at once (named by its id or by the secret; the id is shown)."""
    secret_id = secret_id_of(secret)
    with _open(manifest) as clients:
        clients.secrets.revoke(secret_id)
        typer.echo(f"revoked client secret {secret_id}")


@app.command("list")
def list_clients(
    client: Annotated[
        str | None, typer.Argument(help="Only this client.", autocompletion=completion.client_names)
    ] = None,
    as_json: JsonOption = False,
    manifest: ManifestOption = None,
) -> None:
    """Show manifest clients: auth, roles, scopes, active secrets and keys — never secrets."""
    with _open(manifest) as clients:
        if client is not None and client not in clients.manifest.clients:
            raise NotFoundError.unknown("client", client, clients.manifest.clients)
        rows = _overview(clients, client)
    if as_json:
        print_json({"clients": [row.as_json() for row in rows]})
        return
    # whole, never cut: the ids and kids are what revoke-secret and revoke-key take
    result = table(
        "OAuth clients",
        Col("client", identifier=True),
        "auth",
        "roles",
        "scopes",
        Col("active secrets", identifier=True),
        Col("active keys", identifier=True),
    )
    for row in rows:
        result.add_row(
            row.client,
            "\n".join(row.auth),
            "\n".join(row.roles) or "-",
            "\n".join(row.scopes) or "-",
            "\n".join(f"{s.id}\n  {_until(s.expires_at)}" for s in row.secrets) or "-",
            "\n".join(f"{k.kid}\n  {k.alg}, {_until(k.expires_at)}" for k in row.keys) or "-",
        )
    print_table(result)


@dataclass(frozen=True)
class _Overview:
    client: str
    auth: tuple[str, ...]
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    secrets: tuple[ClientSecretInfo, ...]
    keys: tuple[ClientKeyInfo, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "auth": list(self.auth),
            "roles": list(self.roles),
            "scopes": list(self.scopes),
            "secrets": [
                {"id": s.id, "created_at": iso(s.created_at), "expires_at": iso(s.expires_at)}
                for s in self.secrets
            ],
            "keys": [
                {
                    "kid": k.kid,
                    "alg": k.alg,
                    "created_at": iso(k.created_at),
                    "expires_at": iso(k.expires_at),
                }
                for k in self.keys
            ],
        }


def _overview(clients: _Clients, only: str | None) -> list[_Overview]:
    grants = Grants(clients.manifest)
    secrets = [s for s in clients.secrets.list_secrets(only) if s.active]
    keys = [k for k in clients.keys.list_keys(only, "assertion") if k.active]
    names = [only] if only is not None else list(clients.manifest.clients)
    return [
        _Overview(
            client=name,
            auth=tuple(clients.manifest.clients[name].auth),
            roles=tuple(clients.manifest.clients[name].roles),
            scopes=tuple(sorted(grants.scopes(name))),
            secrets=tuple(s for s in secrets if s.client == name),
            keys=tuple(k for k in keys if k.client == name),
        )
        for name in names
    ]


# -- keygen: a key pair for private_key_jwt in one step ------------------------------------------

KEYGEN_ALGORITHMS: Final = ("ES256", "Ed25519")  # what keygen makes; RSA keys can be registered


@app.command("keygen")
def keygen(  # noqa: PLR0917  (typer maps each parameter to an option)
    client: Annotated[str, typer.Argument(help="A client whose auth includes oauth2.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Directory for CLIENT.jwk (created with mode 0700 if missing).",
            show_default=False,
        ),
    ],
    alg: Annotated[
        str, typer.Option("--alg", help="ES256 (EC P-256) or Ed25519.", metavar="ES256|Ed25519")
    ] = "ES256",
    lifetime: LifetimeOption = None,
    manifest: ManifestOption = None,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON document (stable field names; docs/cli.md)."),
    ] = False,
) -> None:
    """Make a private_key_jwt key pair: the private JWK to DIR/CLIENT.jwk, the public registered.

    The private key is written once, with mode 0600, atomically, and never
    over an existing file; its public half is registered as `clients create
    CLIENT --public-key` registers one. Nothing stays behind if either step fails.
    """
    from interlock.cli.output import iso, print_json
    from interlock.crypto.jose import generate_signing_key, public_jwk
    from interlock.crypto.keyfile import write_private_file

    if alg not in KEYGEN_ALGORITHMS:
        raise InvalidRequestError(f"--alg: {alg!r} is not one of {', '.join(KEYGEN_ALGORITHMS)}")
    with _open(manifest) as clients:
        _require_assertion_client(clients.manifest, client)
        path = out / f"{client}.jwk"
        if path.exists() or path.is_symlink():
            raise InvalidRequestError(f"--out: {path} exists; a key file is never overwritten")
        if out.exists() and not out.is_dir():
            raise InvalidRequestError(f"--out: {out} is not a directory")
        valid_for = duration_option(lifetime)
        key = generate_signing_key(alg)
        private = {**key.as_dict(private=True), "alg": alg, "use": "sig"}
        _private_directory(out)
        try:
            write_private_file(path, json.dumps(private, indent=2).encode() + b"\n")
        except FileExistsError:
            raise InvalidRequestError(
                f"--out: {path} exists; a key file is never overwritten"
            ) from None
        except OSError as exc:
            raise InvalidRequestError(f"--out: cannot write {path} ({exc.strerror})") from None
        try:
            expires_at = datetime.now(UTC) + valid_for if valid_for else None
            kid = clients.keys.register(
                client, public_jwk(key, alg), use="assertion", expires_at=expires_at
            )
        except BaseException:
            path.unlink(missing_ok=True)  # ours: written above, and unusable unregistered
            raise
        info = next(k for k in clients.keys.list_keys(client, "assertion") if k.kid == kid)
        note_result(kid=kid, alg=info.alg)
    if json_output:
        print_json(
            {
                "client": client,
                "kid": kid,
                "alg": info.alg,
                "path": str(path),
                "expires_at": iso(info.expires_at),
            }
        )
        return
    typer.echo(f"registered key {kid} for client {client} ({info.alg}, private_key_jwt)")
    typer.echo(f"private key written to {path} (mode 0600); expires {_when(info.expires_at)}")


def _require_assertion_client(manifest: Manifest, client: str) -> None:
    spec = manifest.clients.get(client)
    if spec is None:
        raise NotFoundError.unknown("client", client, manifest.clients)
    if "oauth2" not in spec.auth:
        raise InvalidRequestError(
            f"client {client!r} may not use private_key_jwt: its auth is "
            f"[{', '.join(spec.auth)}], without oauth2 (clients.{client}.auth in the manifest)"
        )


def _private_directory(directory: Path) -> None:
    """Create ``directory`` with mode 0700 if it is missing (an existing one is left as it is)."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidRequestError(f"--out: cannot create {directory} ({exc.strerror})") from None
