"""``--live``: the shared databases' grants against the plan (``interlock db audit``).

For each ``shared_database`` integration, the admin credential is read from
the vault and the server's catalog is compared with the plan
(:func:`interlock.databases.service.audit`): no privilege beyond the plan
passes ``least_privilege`` and ``type.shared_database.least_privilege_views``;
any drift fails both, each drifted privilege as evidence. A server that
cannot be reached, or a credential that cannot be read, is a failed finding
with the reason (fail closed), never a pass.
"""

from __future__ import annotations

from typing import Final

from interlock.check.results import Finding, Status
from interlock.config.manifest import Manifest
from interlock.databases import service
from interlock.databases.connection import login_from
from interlock.databases.plan import plan_for
from interlock.errors import InterlockError
from interlock.secrets.vault import Vault

__all__ = ["database_findings"]

_ITEMS: Final = ("least_privilege", "type.shared_database.least_privilege_views")
_FIX: Final = "run `interlock db apply {name}` (it revokes what drifted) and find who granted it"


def _audited(manifest: Manifest, vault: Vault, name: str) -> tuple[bool, str, tuple[str, ...]]:
    """``(clean, reason, evidence)`` of one integration."""
    try:
        plan = plan_for(manifest, name)
        admin = login_from(vault.resolve(plan.system.admin), "the admin credential")
        drifts = service.audit(plan, admin)
    except InterlockError as error:
        return False, f"the grants could not be read: {error}", ()
    except Exception as error:  # noqa: BLE001  (a driver's error: its type only, fail closed)
        return False, f"the database could not be read ({type(error).__name__})", ()
    if not drifts:
        return True, "the server grants exactly the plan (interlock db audit)", ()
    return (
        False,
        f"{len(drifts)} privilege(s) beyond the plan on {plan.system_name}",
        tuple(d.detail for d in drifts[:20]),
    )


def database_findings(manifest: Manifest, vault: Vault) -> list[Finding]:
    """Each shared_database integration's grants, as live findings."""
    found: list[Finding] = []
    for name, flow in manifest.integrations.items():
        if flow.database is None:
            continue
        clean, reason, evidence = _audited(manifest, vault, name)
        fix = None if clean else _FIX.format(name=name)
        status: Status = "pass" if clean else "fail"
        found.extend(
            Finding(item, name, status, reason, evidence, fix=fix, live=True) for item in _ITEMS
        )
    return found
