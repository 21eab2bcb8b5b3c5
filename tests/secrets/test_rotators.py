"""The API key, OAuth client secret and TLS certificate rotators, through the engine."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from interlock.actors import Operator
from interlock.audit.sink import MemorySink
from interlock.config.loader import load_manifest
from interlock.config.settings import Settings
from interlock.errors import AuthenticationError, InvalidRequestError, NotFoundError
from interlock.identity.apikeys import ApiKeys
from interlock.identity.client_secrets import ClientSecrets
from interlock.pki import Pki
from interlock.secrets import rotators
from interlock.secrets.rotation import RotationEngine
from interlock.secrets.rotators.base import RotatorContext
from interlock.secrets.vault import SecretInfo, Vault
from interlock.store import Deployment, initialise
from tests.secrets.rotation_support import ADMIN

MANIFEST = """\
version: 1
systems:
  erp: {url: "https://erp.internal", location: DE}
roles:
  reader: {scopes: [orders.read]}
  writer: {scopes: [orders.write]}
clients:
  sync: {auth: [api_key, mtls], roles: [reader, writer]}
  portal: {auth: [oauth2], roles: [reader]}
integrations:
  f:
    source: erp
    target: erp
    client: sync
    purpose: test
    legal_basis: contract
    retention: 1d
    routes:
      - {method: GET, path: "/a", upstream: erp, scope: orders.read}
"""


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """A fresh SQLite deployment (the rotators' targets are store-backed on either)."""
    opened = initialise(
        Settings(data_dir=tmp_path / "d", database_url=f"sqlite:///{tmp_path / 's.db'}")
    )
    yield opened
    opened.close()


@pytest.fixture
def context(deployment: Deployment, tmp_path: Path) -> RotatorContext:
    """What the registry's rotators are built with."""
    path = tmp_path / "interlock.yaml"
    path.write_text(MANIFEST)
    vault = Vault(deployment.engine, deployment.keyring, audit=MemorySink(), cache_seconds=0)
    return RotatorContext(
        vault=vault,
        engine=deployment.engine,
        keyring=deployment.keyring,
        manifest=lambda: load_manifest(path),
        pki=lambda: Pki(
            deployment.engine, deployment.keyring, deployment.deployment_id, "example.test"
        ),
    )


def _engine(context: RotatorContext, later: timedelta = timedelta(0)) -> RotationEngine:
    def build(info: SecretInfo) -> rotators.Rotator:
        return rotators.build(info.rotator or "", info.rotator_config, context)

    return RotationEngine(
        context.vault,
        context.engine,
        build,
        actor=ADMIN,
        now=lambda: datetime.now(UTC) + later,
        audit=MemorySink(),
    )


def _value(context: RotatorContext, name: str, stage: str = "current") -> str:
    secret, _ = context.vault.read(name, actor=ADMIN, stage=stage)  # type: ignore[arg-type]
    return secret.reveal().decode()


def test_api_key_rotation_issues_a_key_with_the_same_scopes_and_revokes_the_old_after_overlap(
    context: RotatorContext,
) -> None:
    """Both keys work during the overlap; after the retire only the new one does."""
    keys = ApiKeys(context.engine, context.keyring, context.manifest(), cache_seconds=0)
    old = keys.create("sync", ["orders.read"])
    context.vault.write("sync/api-key", old.token.encode(), actor=ADMIN, kind="api_key")
    context.vault.configure(
        "sync/api-key",
        actor=ADMIN,
        overlap=60,
        rotator="api_key",
        rotator_config={"client": "sync"},
    )
    assert _engine(context).rotate("sync/api-key") == 2
    new = _value(context, "sync/api-key")
    assert new != old.token
    assert keys.verify(new).scopes == frozenset({"orders.read"})
    assert keys.verify(old.token).client == "sync"  # the overlap

    assert _engine(context).retire("sync/api-key") is None  # not before the overlap is over
    assert _engine(context, timedelta(minutes=2)).retire("sync/api-key") == 1
    with pytest.raises(AuthenticationError):
        keys.verify(old.token)
    assert keys.verify(new).client == "sync"


def test_setting_the_same_api_key_twice_issues_it_once(context: RotatorContext) -> None:
    """A repeated set step (a resumed rotation) is a no-op."""
    from interlock.credentials.keyformat import new_key

    keys = ApiKeys(context.engine, context.keyring, context.manifest(), cache_seconds=0)
    token, parsed = new_key()
    first = keys.create("sync", token=token)
    again = keys.create("sync", token=token)
    assert first.info.id == again.info.id == parsed.key_id
    assert len(keys.list_keys("sync")) == 1


def test_oauth_client_secret_rotation_keeps_two_active_then_revokes_the_old(
    context: RotatorContext,
) -> None:
    """The client authenticates with both secrets during the overlap, with the new one after."""
    secrets = ClientSecrets(context.engine, context.keyring, context.manifest())
    _, old = secrets.create("portal")
    context.vault.write(
        "portal/client-secret", old.encode(), actor=ADMIN, kind="oauth_client_secret"
    )
    context.vault.configure(
        "portal/client-secret",
        actor=ADMIN,
        overlap=60,
        rotator="oauth_client_secret",
        rotator_config={"client": "portal"},
    )
    assert _engine(context).rotate("portal/client-secret") == 2
    new = _value(context, "portal/client-secret")
    assert secrets.authenticate("portal", new) == "portal"
    assert secrets.authenticate("portal", old) == "portal"
    assert sum(s.active for s in secrets.list_secrets("portal")) == 2

    assert _engine(context, timedelta(minutes=2)).retire("portal/client-secret") == 1
    with pytest.raises(AuthenticationError):
        secrets.authenticate("portal", old)
    assert secrets.authenticate("portal", new) == "portal"


def test_tls_certificate_rotation_issues_through_the_pki_and_revokes_the_old(
    context: RotatorContext,
) -> None:
    """The value is a PEM bundle from the PKI; the retired certificate is revoked as superseded."""
    from interlock.crypto.pkix import load_certificates_pem

    pki = context.pki()
    first = pki.issue_client("sync")
    context.vault.write(
        "sync/tls",
        first.certificate_pem + first.private_key_pem,
        actor=ADMIN,
        kind="tls_certificate",
    )
    context.vault.configure(
        "sync/tls",
        actor=ADMIN,
        overlap=0,
        rotator="tls_certificate",
        rotator_config={"client": "sync"},
    )
    assert _engine(context).rotate("sync/tls") == 2
    bundle = _value(context, "sync/tls").encode()
    assert b"PRIVATE KEY" in bundle
    leaf = load_certificates_pem(bundle)[0]
    assert leaf.not_valid_after_utc - datetime.now(UTC) > timedelta(days=85)
    assert _engine(context).retire("sync/tls") == 1
    assert pki.get(first.serial).revocation_reason == "superseded"
    assert pki.get(format(leaf.serial_number, "x")).status == "active"


@pytest.mark.parametrize(
    ("client", "error"), [("ghost", NotFoundError), ("portal", InvalidRequestError)]
)
def test_a_tls_certificate_rotator_only_serves_manifest_mtls_clients(
    context: RotatorContext, client: str, error: type[Exception]
) -> None:
    """A client certificate for a name the gateway would not accept is refused before anything
    is issued, as ``pki issue client`` refuses it."""
    pki = context.pki()
    before = len(pki.list())
    with pytest.raises(error, match=client):
        rotators.build("tls_certificate", {"client": client}, context)
    assert len(pki.list()) == before


def test_a_certificate_is_due_at_two_thirds_of_its_life_whatever_the_schedule(
    context: RotatorContext,
) -> None:
    """A 30-day certificate under the 60/80-day default: due at day 20, overdue at day 25."""
    from interlock.secrets.rotation import due, overdue

    issued = context.pki().issue_client("short", timedelta(days=30))
    vault = context.vault
    vault.write("short/tls", issued.certificate_pem + issued.private_key_pem, actor=ADMIN)
    info = vault.info("short/tls", actor=Operator("admin:test"))
    assert info.not_after is not None
    assert info.not_before is not None
    life = info.not_after - info.not_before
    assert info.due_at() == info.not_before + life * 2 / 3
    now = datetime.now(UTC)
    assert due(vault, now) == []
    assert [i.name for i in due(vault, now + timedelta(days=21))] == ["short/tls"]
    assert overdue(vault, now + timedelta(days=21)) == []
    assert [i.name for i in overdue(vault, now + timedelta(days=26))] == ["short/tls"]
    assert [i.name for i in vault.secrets(actor=Operator("admin:test"))] == ["short/tls"]
    assert vault.secrets(actor=Operator("admin:test"))[0].not_after == info.not_after
    # A value without a certificate follows the schedule alone.
    vault.write("plain/key", b"not a certificate", actor=ADMIN, kind="api_key")
    plain = vault.info("plain/key", actor=Operator("admin:test"))
    assert (plain.not_before, plain.not_after) == (None, None)
    assert plain.due_at() == plain.created_at + timedelta(days=90)
