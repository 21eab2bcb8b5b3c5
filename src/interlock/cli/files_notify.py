"""The notifier the ``interlock files`` commands hand their quarantines (issue 24).

:class:`~interlock.files.notify.Notifier` lives in the domain, which may not
import the client SDK; its webhook signer (RFC 9421, Interlock's current OAuth
signing key, as the privacy webhooks sign) is handed in here, with the SFTP
upload (the partner's key from the vault) and the trust anchors.
"""

from __future__ import annotations

import httpx

from interlock.cli.context import served_anchors, settings
from interlock.cli.privacy_wiring import request_signer
from interlock.cli.vault_session import VaultSession
from interlock.config.files import Partner
from interlock.config.manifest import Manifest
from interlock.errors import InvalidRequestError
from interlock.files.notify import Notifier
from interlock.files.sftp import upload_report
from interlock.gateway.tls import trust_context
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
    anchors = served_anchors(current)

    async def sftp_upload(partner: Partner, directory: str, name: str, data: bytes) -> None:
        if partner.sftp is None:
            raise InvalidRequestError("the partner has no sftp server")
        key = session.vault.resolve(partner.sftp.key).reveal()
        await upload_report(partner.sftp, key, directory, name, data)

    def auth() -> httpx.Auth:
        return SignedRequests(signer())

    return Notifier(
        current.data_dir / "files",
        manifest,
        audit=session.audit,
        sftp_upload=sftp_upload,
        trust=lambda ca: trust_context(ca, anchors, manifest.tls.min_version),
        auth=auth,
    )
