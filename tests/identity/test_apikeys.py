"""API keys: scoped to the client's grants, hashed at rest, expiring, rotating, revocable."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from interlock.config.loader import load_manifest
from interlock.errors import AuthenticationError, InvalidRequestError, NotFoundError
from interlock.identity.apikeys import ApiKeyInfo, ApiKeys
from interlock.store import Deployment
from interlock.testing.clock import ManualClock

MANIFEST = """\
version: 1
systems:
  erp: {url: "https://erp.internal", location: DE}
roles:
  reader: {scopes: [orders.read]}
  writer: {scopes: [orders.write]}
clients:
  sync: {auth: [api_key], roles: [reader, writer]}
  oauth: {auth: [oauth2], roles: [reader]}
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
      - {method: POST, path: "/a", upstream: erp, scope: orders.write}
"""


@pytest.fixture
def keys(deployment: Deployment, tmp_path: Path, clock: ManualClock) -> ApiKeys:
    """The key service bound to the test manifest."""
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    return ApiKeys(deployment.engine, deployment.keyring, load_manifest(path), now=clock)


def test_only_a_hash_is_stored(keys: ApiKeys, deployment: Deployment) -> None:
    """Neither the token nor its secret part appear anywhere in the table."""
    issued = keys.create("sync")
    with deployment.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM api_keys")).all()
    dumped = repr(rows)
    secret = issued.token.split("_")[2][:43]
    assert issued.token not in dumped
    assert secret not in dumped
    assert "***" in repr(issued)


def test_scopes_default_to_the_clients_and_may_be_narrowed(keys: ApiKeys) -> None:
    """No --scope: all of the client's; a subset narrows; a superset is refused."""
    assert set(keys.create("sync").info.scopes) == {"orders.read", "orders.write"}
    narrowed = keys.create("sync", ["orders.read"])
    assert keys.verify(narrowed.token).scopes == frozenset({"orders.read"})
    with pytest.raises(InvalidRequestError, match=r"not granted orders\.admin"):
        keys.create("sync", ["orders.read", "orders.admin"])


def test_unknown_client_and_clients_without_api_key_auth_are_refused(keys: ApiKeys) -> None:
    """Keys exist only for manifest clients that allow api_key."""
    with pytest.raises(NotFoundError):
        keys.create("ghost")
    with pytest.raises(InvalidRequestError, match="may not use API keys"):
        keys.create("oauth")


def test_expiry(keys: ApiKeys, clock: ManualClock) -> None:
    """A key works until its expiry and not after."""
    issued = keys.create("sync", lifetime=timedelta(days=1))
    clock.now += timedelta(hours=23)
    assert keys.verify(issued.token).client == "sync"
    clock.now += timedelta(hours=1)
    with pytest.raises(AuthenticationError) as caught:
        keys.verify(issued.token)
    assert "expired" in caught.value.reason
    assert "expired" in caught.value.message  # the caller's message is generic but honest


def test_rotation_overlap_then_only_the_successor(keys: ApiKeys, clock: ManualClock) -> None:
    """Both keys work in the overlap (default 24 h); then only the new one."""
    old = keys.create("sync")
    new = keys.rotate(old.info.id)
    assert keys.get(old.info.id).status(clock.now) == "overlap"
    assert keys.verify(old.token).client == keys.verify(new.token).client == "sync"
    clock.now += timedelta(hours=24)
    with pytest.raises(AuthenticationError):
        keys.verify(old.token)
    assert keys.verify(new.token).client == "sync"
    assert new.info.scopes == old.info.scopes


def test_a_key_cannot_be_rotated_twice_or_after_revocation(keys: ApiKeys) -> None:
    """Rotation chains stay linear; dead keys stay dead."""
    old = keys.create("sync")
    keys.rotate(old.info.id)
    with pytest.raises(InvalidRequestError, match="already rotated"):
        keys.rotate(old.info.id)
    other = keys.create("sync")
    keys.revoke(other.info.id)
    with pytest.raises(InvalidRequestError, match="revoked"):
        keys.rotate(other.info.id)


def test_two_rotations_racing_leave_one_successor(
    keys: ApiKeys, deployment: Deployment, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process rotates the key between this rotation's check and its write.

    Before, both succeeded: the second write replaced the first successor's
    link, and that successor stayed active for its whole lifetime, tied to
    nothing (an adversarial review of API keys).
    """
    elsewhere = ApiKeys(deployment.engine, deployment.keyring, keys.manifest, now=clock)
    old = keys.create("sync")
    checked = keys.get

    def check_then_race(key_id: str) -> ApiKeyInfo:
        info = checked(key_id)
        elsewhere.rotate(key_id)
        return info

    monkeypatch.setattr(keys, "get", check_then_race)
    with pytest.raises(InvalidRequestError, match="already rotated"):
        keys.rotate(old.info.id)
    statuses = sorted(k.status(clock.now) for k in elsewhere.list_keys("sync"))
    assert statuses == ["active", "overlap"]


def test_a_rotation_here_ends_the_old_key_at_its_overlap_whatever_the_cache(
    deployment: Deployment, tmp_path: Path, clock: ManualClock
) -> None:
    """The rotating object forgets the old key's cached details (it kept its old expiry)."""
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    keys = ApiKeys(
        deployment.engine, deployment.keyring, load_manifest(path), now=clock, cache_seconds=3600
    )
    old = keys.create("sync")
    assert keys.verify(old.token).client == "sync"  # now cached for an hour
    keys.rotate(old.info.id, overlap=timedelta(seconds=1))
    clock.now += timedelta(seconds=2)
    with pytest.raises(AuthenticationError):
        keys.verify(old.token)


def test_a_given_token_of_a_revoked_key_is_not_issued_again(keys: ApiKeys) -> None:
    """Issuing the same token again returns the first key only while it is alive."""
    token = keys.create("sync").token
    again = keys.create("sync", token=token)
    keys.revoke(again.info.id)
    with pytest.raises(InvalidRequestError, match="revoked"):
        keys.create("sync", token=token)


def test_revoked_key_is_refused_and_listed_as_revoked(keys: ApiKeys, clock: ManualClock) -> None:
    """Revocation is immediate and visible in the listing."""
    issued = keys.create("sync")
    keys.revoke(issued.info.id)
    with pytest.raises(AuthenticationError):
        keys.verify(issued.token)
    (info,) = keys.list_keys("sync")
    assert info.status(clock.now) == "revoked"


def test_removing_a_role_in_the_manifest_narrows_existing_keys(
    keys: ApiKeys, tmp_path: Path
) -> None:
    """Scopes are intersected with the client's current grants at every check."""
    issued = keys.create("sync")
    path = tmp_path / "m2.yaml"
    path.write_text(
        MANIFEST.replace("roles: [reader, writer]", "roles: [reader]")
        .replace('      - {method: POST, path: "/a", upstream: erp, scope: orders.write}\n', "")
        .replace("  writer: {scopes: [orders.write]}\n", "")
    )
    keys.manifest = load_manifest(path)
    assert keys.verify(issued.token).scopes == frozenset({"orders.read"})


def test_last_used_is_recorded(keys: ApiKeys, clock: ManualClock) -> None:
    """Verification records when a key was last used."""
    issued = keys.create("sync")
    assert keys.get(issued.info.id).last_used_at is None
    keys.verify(issued.token)
    assert keys.get(issued.info.id).last_used_at == clock.now


def test_wrong_secret_for_a_real_id_is_refused(keys: ApiKeys) -> None:
    """Knowing a key id is not enough."""
    from interlock.credentials.keyformat import PREFIX, new_key

    issued = keys.create("sync")
    forged_token, _ = new_key()
    forged = PREFIX + issued.info.id + forged_token[len(PREFIX) + 12 :]
    with pytest.raises(AuthenticationError):
        keys.verify(forged)


def _checked_twice(keys: ApiKeys, token: str) -> None:
    """Verify ``token`` so that the cache, then the checked keys, answer it."""
    keys.verify(token)  # the store, then the cache, with last_used written
    first = keys.verify_cached(token)  # parsed and HMAC-checked against the cache
    assert first is not None
    assert keys.verify_cached(token) == first  # the checked keys answer


def test_a_checked_key_is_refused_once_it_expires(keys: ApiKeys, clock: ManualClock) -> None:
    """Remembering that a key passed never outlives the key: expiry is checked every time."""
    issued = keys.create("sync", lifetime=timedelta(seconds=30))
    _checked_twice(keys, issued.token)
    clock.now += timedelta(seconds=30)
    with pytest.raises(AuthenticationError) as caught:
        keys.verify_cached(issued.token)
    assert caught.value.reason == f"key {issued.info.id} is expired"


def test_a_checked_key_is_refused_once_revoked_and_narrowed_by_the_manifest(
    keys: ApiKeys, tmp_path: Path
) -> None:
    """A revocation through the service, a manifest change: the checked key is checked afresh."""
    issued = keys.create("sync")
    _checked_twice(keys, issued.token)
    path = tmp_path / "m2.yaml"
    path.write_text(
        MANIFEST.replace("roles: [reader, writer]", "roles: [reader]")
        .replace('      - {method: POST, path: "/a", upstream: erp, scope: orders.write}\n', "")
        .replace("  writer: {scopes: [orders.write]}\n", "")
    )
    keys.manifest = load_manifest(path)
    narrowed = keys.verify_cached(issued.token)
    assert narrowed is not None
    assert narrowed.scopes == frozenset({"orders.read"})
    keys.revoke(issued.info.id)
    assert keys.verify_cached(issued.token) is None  # the store must be asked
    with pytest.raises(AuthenticationError):
        keys.verify(issued.token)


def test_a_checked_keys_id_with_another_secret_is_refused(keys: ApiKeys) -> None:
    """The checked keys are keyed by the whole key: its id alone gets nothing."""
    from interlock.credentials.keyformat import PREFIX, _checksum, new_key

    issued = keys.create("sync")
    _checked_twice(keys, issued.token)
    _, other = new_key()
    body = f"{PREFIX}{issued.info.id}_{other.secret}"  # well formed: the right id, checksum
    with pytest.raises(AuthenticationError) as caught:
        keys.verify_cached(body + _checksum(body))
    assert caught.value.reason == f"wrong secret for key {issued.info.id}"
