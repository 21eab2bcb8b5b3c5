"""Interlock's AS2 certificates: issued by the PKI, the bundle sealed in the vault.

What ``interlock pki issue as2``, ``interlock pki renew`` and ``interlock
files as2-cert`` share (:mod:`interlock.files.as2_identity` says what the
bundle holds). The key goes from the PKI straight into the vault: it is never
printed nor written to a file.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from interlock.actors import Operator
from interlock.cli.vault_session import VaultSession
from interlock.errors import InvalidRequestError, NotFoundError
from interlock.files.as2_identity import (
    As2Identities,
    bundle_after_renewal,
    bundle_of,
    check_name,
    parse_bundle,
    secret_name,
)
from interlock.pki.authority import CertificateInfo, Issued, Pki

__all__ = ["identities", "issue", "pki_of", "renew"]

_OPERATOR: Final = Operator("system:pki")


def pki_of(session: VaultSession) -> Pki:
    """The deployment's PKI, on the session's store."""
    deployment = session.deployment
    return Pki(
        deployment.engine,
        deployment.keyring,
        deployment.deployment_id,
        deployment.settings.trust_domain,
    )


def issue(session: VaultSession, name: str, lifetime: timedelta) -> Issued:
    """Issue AS2 certificate ``name`` and seal it with its key in the vault; once per name."""
    check_name(name)
    try:
        session.vault.info(secret_name(name), actor=_OPERATOR)
    except NotFoundError:
        pass
    else:
        raise InvalidRequestError(
            f"AS2 certificate {name!r} exists (secret://{secret_name(name)}); renew it with "
            "`interlock pki renew SERIAL --out DIR`"
        )
    issued = pki_of(session).issue_as2(name, lifetime)
    session.vault.write(secret_name(name), bundle_of(issued), actor=_OPERATOR)
    return issued


def renew(
    session: VaultSession, pki: Pki, info: CertificateInfo, lifetime: timedelta | None
) -> Issued:
    """Renew AS2 certificate ``info``: the new one current, the old kept while unexpired."""
    where = f"secret://{secret_name(info.name)}"
    old, _ = session.vault.read(secret_name(info.name), actor=_OPERATOR)
    issued = pki.renew(info.serial, lifetime)
    bundle = bundle_after_renewal(old.reveal(), issued, pki.now(), where)
    session.vault.write(secret_name(info.name), bundle, actor=_OPERATOR)
    return issued


def identities(session: VaultSession, name: str) -> As2Identities:
    """AS2 certificate ``name`` as the vault holds it."""
    check_name(name)
    try:
        bundle, _ = session.vault.read(secret_name(name), actor=_OPERATOR)
    except NotFoundError:
        raise NotFoundError(
            f"no AS2 certificate {name!r}; issue it with `interlock pki issue as2 {name}`"
        ) from None
    return parse_bundle(bundle.reveal(), f"secret://{secret_name(name)}")
