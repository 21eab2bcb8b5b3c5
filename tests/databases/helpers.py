"""Logging a consumer in the way production does: a rotation through the real rotator."""

from __future__ import annotations

import json
from pathlib import Path

from interlock.config.loader import load_manifest
from interlock.databases.connection import Login
from interlock.databases.plan import Plan, plan_for
from interlock.secret import Secret
from interlock.secrets.rotators.base import Credential
from interlock.secrets.rotators.shared_database import SharedDatabaseRotator


def rotator(plan: Plan, admin: Login, client: str) -> SharedDatabaseRotator:
    """The rotator of ``client``'s two logins."""
    found = next(c for c in plan.consumers if c.client == client)
    return SharedDatabaseRotator(plan, found, admin)


def rotate(plan: Plan, admin: Login, client: str, current: Credential | None = None) -> Credential:
    """One rotation of ``client``'s credential (create, set, test); the new credential."""
    found = next(c for c in plan.consumers if c.client == client)
    now = current or Credential(found.secret, 1, Secret(b'{"username": null}'))
    turn = rotator(plan, admin, client)
    pending = Credential(now.name, now.version + 1, Secret(turn.generate(now)))
    turn.set(pending, now)
    turn.test(pending)
    return pending


def login_of(credential: Credential) -> Login:
    """The credential as a login."""
    value = json.loads(credential.value.reveal())
    return Login(value["username"], Secret(value["password"].encode()))


#: The ``billing`` consumer of the test manifest (``.format(source=...)``).
BILLING = """        billing:
          views:
            customer_ids:
              table: {source}.customers
              columns: {{id: system.operations}}
"""


def edited_plan(manifest: Path, integration: str, old: str, new: str) -> Plan:
    """The plan of ``integration`` after one edit of the manifest (written beside it)."""
    text = manifest.read_text(encoding="utf-8")
    assert old in text
    path = manifest.with_name("edited.yaml")
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return plan_for(load_manifest(path), integration)
