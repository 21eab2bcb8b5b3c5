"""Client secrets: listed without hashes, rotated with an overlap, revoked per client."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta
from pathlib import Path

import pytest

from interlock.config.loader import load_manifest
from interlock.errors import AuthenticationError, InvalidRequestError, NotFoundError
from interlock.identity import client_secrets
from interlock.identity.client_secrets import DEFAULT_LIFETIME, MAX_ACTIVE, ClientSecrets
from interlock.store import Deployment
from interlock.testing.clock import ManualClock

MANIFEST = """\
version: 1
systems:
  erp: {url: "https://erp.internal", location: DE}
roles:
  reader: {scopes: [orders.read]}
clients:
  app: {auth: [oauth2], roles: [reader]}
  other: {auth: [oauth2], roles: [reader]}
  legacy: {auth: [api_key], roles: [reader]}
integrations:
  f:
    source: erp
    target: erp
    client: legacy
    purpose: test
    legal_basis: contract
    retention: 1d
    routes:
      - {method: GET, path: "/a", upstream: erp, scope: orders.read}
"""


@pytest.fixture
def secrets(deployment: Deployment, tmp_path: Path, clock: ManualClock) -> ClientSecrets:
    """The secret service on each store backend, with a hand-moved clock."""
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    return ClientSecrets(deployment.engine, deployment.keyring, load_manifest(path), now=clock)


def _works(secrets: ClientSecrets, client: str, secret: str) -> bool:
    try:
        return secrets.authenticate(client, secret) == client
    except AuthenticationError:
        return False


def test_rotate_keeps_the_previous_secret_for_the_overlap_only(
    secrets: ClientSecrets, clock: ManualClock
) -> None:
    """Both work during the overlap; the previous one stops at its end, the new one lives on."""
    old_id, old = secrets.create("app")
    clock.now += timedelta(days=1)
    new_id, new = secrets.rotate("app", overlap=timedelta(hours=2))
    assert new_id != old_id
    assert _works(secrets, "app", old)
    assert _works(secrets, "app", new)
    listed = {info.id: info for info in secrets.list_secrets("app")}
    assert listed[old_id].expires_at == clock() + timedelta(hours=2)
    assert listed[new_id].expires_at == clock() + DEFAULT_LIFETIME
    clock.now += timedelta(hours=2) - timedelta(seconds=1)
    assert _works(secrets, "app", old)
    clock.now += timedelta(seconds=1)
    assert not _works(secrets, "app", old)
    assert _works(secrets, "app", new)


def test_rotating_again_within_the_overlap_is_refused_and_ends_nothing(
    secrets: ClientSecrets, clock: ManualClock
) -> None:
    """A second rotation would end the previous secret while it is still valid: refused.

    As ``keys rotate`` refuses a key rotated already. Revoking the previous
    secret first (the operator's explicit choice) lets the rotation go ahead.
    """
    first_id, first = secrets.create("app")
    clock.now += timedelta(hours=1)
    second_id, second = secrets.rotate("app")
    clock.now += timedelta(minutes=1)
    before = secrets.list_secrets("app")
    with pytest.raises(InvalidRequestError, match=f"{first_id}.* still valid until") as raised:
        secrets.rotate("app")
    assert "revoke-secret" in str(raised.value)
    assert secrets.list_secrets("app") == before
    assert _works(secrets, "app", first)
    assert _works(secrets, "app", second)
    secrets.revoke(first_id)
    _, third = secrets.rotate("app")
    assert sum(info.active for info in secrets.list_secrets("app")) == MAX_ACTIVE
    assert _works(secrets, "app", second)
    assert _works(secrets, "app", third)
    listed = {info.id: info for info in secrets.list_secrets("app")}
    assert listed[second_id].expires_at == clock() + timedelta(hours=24)


def test_rotate_never_extends_the_previous_secrets_life(
    secrets: ClientSecrets, clock: ManualClock
) -> None:
    """A secret expiring within the overlap keeps its own, earlier expiry."""
    old_id, _ = secrets.create("app", lifetime=timedelta(hours=1))
    secrets.rotate("app", overlap=timedelta(hours=24))
    listed = {info.id: info for info in secrets.list_secrets("app")}
    assert listed[old_id].expires_at == clock() + timedelta(hours=1)


def test_rotate_without_an_active_secret_just_issues_one(
    secrets: ClientSecrets, clock: ManualClock
) -> None:
    """Expired and revoked secrets are left alone."""
    expired_id, _ = secrets.create("app", lifetime=timedelta(hours=1))
    clock.now += timedelta(hours=2)
    new_id, new = secrets.rotate("app", lifetime=timedelta(days=7))
    assert _works(secrets, "app", new)
    listed = {info.id: info for info in secrets.list_secrets("app")}
    assert listed[expired_id].revoked_at is None
    assert listed[new_id].expires_at == clock() + timedelta(days=7)


def test_rotate_refuses_bad_arguments_and_clients(secrets: ClientSecrets) -> None:
    """Unknown client, a client without oauth2, a negative overlap, a non-positive lifetime."""
    with pytest.raises(NotFoundError):
        secrets.rotate("ghost")
    with pytest.raises(InvalidRequestError, match="may not use OAuth"):
        secrets.rotate("legacy")
    with pytest.raises(InvalidRequestError, match="overlap"):
        secrets.rotate("app", overlap=timedelta(seconds=-1))
    with pytest.raises(InvalidRequestError, match="lifetime"):
        secrets.rotate("app", lifetime=timedelta(0))
    assert secrets.list_secrets() == []


def test_a_failed_rotation_writes_nothing(
    secrets: ClientSecrets, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shortening the previous secret and issuing happen in one transaction: all or none."""
    secrets.create("app")
    clock.now += timedelta(hours=1)
    before = secrets.list_secrets("app")

    def broken() -> tuple[str, object]:
        raise RuntimeError("no randomness today")

    monkeypatch.setattr(client_secrets, "new_client_secret", broken)
    with pytest.raises(RuntimeError):
        secrets.rotate("app")
    assert secrets.list_secrets("app") == before


def test_list_secrets_shows_state_but_never_the_hash(
    secrets: ClientSecrets, clock: ManualClock
) -> None:
    """Typed records, newest first, per client or all; active as of now."""
    revoked_id, _ = secrets.create("app")
    clock.now += timedelta(seconds=1)
    expiring_id, _ = secrets.create("app", lifetime=timedelta(minutes=1))
    other_id, _ = secrets.create("other")
    secrets.revoke(revoked_id)
    clock.now += timedelta(minutes=1)
    listed = secrets.list_secrets("app")
    assert [info.id for info in listed] == [expiring_id, revoked_id]
    assert [info.active for info in listed] == [False, False]
    assert listed[1].revoked_at is not None
    assert {info.id for info in secrets.list_secrets()} == {revoked_id, expiring_id, other_id}
    assert [f.name for f in fields(listed[0])] == [
        "id",
        "client",
        "created_at",
        "expires_at",
        "revoked_at",
        "active",
    ]
    assert secrets.list_secrets("other")[0].active


def test_revoke_client_revokes_every_active_secret_of_that_client_only(
    secrets: ClientSecrets,
) -> None:
    """Returns how many were active; the other client's secrets keep working."""
    _, first = secrets.create("app")
    _, second = secrets.create("app")
    _, theirs = secrets.create("other")
    assert secrets.revoke_client("app") == 2
    assert secrets.revoke_client("app") == 0
    assert not _works(secrets, "app", first)
    assert not _works(secrets, "app", second)
    assert _works(secrets, "other", theirs)
    assert secrets.revoke_client("ghost") == 0


def test_a_recently_read_secret_is_checked_without_the_store(
    secrets: ClientSecrets, deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After one authentication the row is reused for a second: right secret yes, wrong no."""
    secret_id, secret = secrets.create("app")
    assert secrets.authenticate_cached("app", secret) is None  # nothing read yet
    secrets.authenticate("app", secret)
    assert secrets.authenticate_cached("app", secret) == "app"
    with pytest.raises(AuthenticationError):
        secrets.authenticate_cached("other", secret)
    assert secrets.authenticate_cached("app", secret[:-8] + "AAAAAAAA") is None  # malformed
    # Revoked here: at once. Revoked by another process: within RECENT_SECONDS.
    other = ClientSecrets(deployment.engine, deployment.keyring, secrets.manifest)
    other.revoke(secret_id)
    assert secrets.authenticate_cached("app", secret) == "app"
    monkeypatch.setattr(client_secrets, "RECENT_SECONDS", 0.0)
    assert secrets.authenticate_cached("app", secret) is None
    with pytest.raises(AuthenticationError):
        secrets.authenticate("app", secret)
    secrets.revoke(secret_id)
    assert secrets.authenticate_cached("app", secret) is None


def test_client_secrets_have_a_prefix_of_their_own(secrets: ClientSecrets) -> None:
    """ilcs_ tells a client secret from an API key (ilk_) to scanners, redaction and people."""
    from interlock.logs import redact_text
    from interlock.scan.scanner import scan_text

    _, secret = secrets.create("app")
    assert secret.startswith("ilcs_")
    assert _works(secrets, "app", secret)
    assert secret not in redact_text(f"Authorization: client_id=app, {secret}")
    found = scan_text("notes.md", f"the client's secret is {secret}\n")
    assert [f.rule_id for f in found] == ["interlock-client-secret"]


def test_client_secrets_issued_with_the_api_key_prefix_keep_working(
    secrets: ClientSecrets,
) -> None:
    """Secrets issued before the ilcs_ prefix (ilk_...) still authenticate until they end."""
    from interlock.credentials.keyformat import new_key

    legacy = new_key()[0]
    secrets.create("app", token=legacy)
    assert legacy.startswith("ilk_")
    assert _works(secrets, "app", legacy)
    assert not _works(secrets, "app", "ilcs_" + legacy.removeprefix("ilk_"))
