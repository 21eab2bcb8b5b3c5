"""The notifier the ``interlock files`` commands hand their quarantines (issue 24).

Assembled as the gateway assembles its own
(:func:`~interlock.gateway.partner_notify.partner_notifier`), with this
session's vault, the served trust anchors and the webhook signer (RFC 9421,
Interlock's current OAuth signing key, as the privacy webhooks sign), which
comes from the client SDK and so is handed in here.
"""

from __future__ import annotations

import httpx

from interlock.cli.context import served_anchors, settings
from interlock.cli.privacy_wiring import request_signer
from interlock.cli.vault_session import VaultSession
from interlock.config.manifest import Manifest
from interlock.files.notify import Notifier
from interlock.gateway.partner_notify import partner_notifier
from interlock.oauth.signing_keys import SigningKeys
from interlock.sdk.rfc9421 import SignedRequests

__all__ = ["notifier"]


def notifier(session: VaultSession, manifest: Manifest) -> Notifier:
    """A notifier for ``manifest``'s partners over this session's vault, keys and audit log."""
    current = settings()
    deployment = session.deployment
    signer = request_signer(
        SigningKeys(deployment.engine, deployment.keyring, current.oauth_signing_alg)
    )

    def auth() -> httpx.Auth:
        return SignedRequests(signer())

    return partner_notifier(
        manifest,
        root=current.data_dir / "files",
        resolve=lambda reference: session.vault.resolve(reference).reveal(),
        anchors=served_anchors(current),
        audit=session.audit,
        auth=auth,
    )
