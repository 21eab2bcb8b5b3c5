"""The partner notifier as the faces assemble it: the gateway's AS2 receivers and the CLI alike.

:class:`~interlock.files.notify.Notifier` lives in the domain; what it needs of
the deployment is handed in here, once: the SFTP upload (the partner's key
from the vault, its host key pinned), the trust anchors as verifying TLS
contexts for webhooks, and the webhook signer (RFC 9421) — which comes from
the client SDK, so the face that starts the process passes it (``auth``;
None: the webhook way fails each attempt, saying so, and is audited).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

from interlock.audit import AuditSink
from interlock.config.files import Partner
from interlock.config.manifest import Manifest
from interlock.errors import InvalidRequestError
from interlock.files.notify import Notifier
from interlock.files.sftp import upload_report
from interlock.gateway.tls import trust_context

__all__ = ["partner_notifier"]


def partner_notifier(
    manifest: Manifest,
    *,
    root: Path,
    resolve: Callable[[str], bytes],
    anchors: Mapping[str, Path],
    audit: AuditSink,
    auth: Callable[[], httpx.Auth] | None,
) -> Notifier:
    """A notifier for ``manifest``'s partners, its state under ``root`` (``DATA_DIR/files``).

    ``resolve``: a ``secret://`` reference to the secret's bytes (the vault).
    """

    async def sftp_upload(partner: Partner, directory: str, name: str, data: bytes) -> None:
        if partner.sftp is None:
            raise InvalidRequestError("the partner has no sftp server")
        await upload_report(partner.sftp, resolve(partner.sftp.key), directory, name, data)

    return Notifier(
        root,
        manifest,
        audit=audit,
        sftp_upload=sftp_upload,
        trust=lambda ca: trust_context(ca, anchors, manifest.tls.min_version),
        auth=auth,
    )
