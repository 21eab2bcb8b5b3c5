"""Send a file to a partner over AS2 (RFC 4130) and check the signed MDN that answers it.

:func:`send` builds the payload part, signs it (detached S/MIME) and
envelopes it for the partner — compressed (RFC 5402) before or after signing
when the profile says so — computes the MIC of what it signed, and POSTs
it over HTTPS — TLS verified against the partner's trust anchor, through
:func:`~interlock.outbound.outbound_async_client` — with the AS2 headers and
a request for a signed receipt. With ``mdn: sync`` the MDN is the HTTP
answer: it must be signed by the partner's certificate (chained to its
anchor, valid, not revoked), answer our ``Message-ID``, carry exactly our
MIC and say ``processed``; anything else is a failed send. With ``mdn:
async`` the partner posts the MDN later to ``mdn_url`` and the send is
recorded as awaiting it (:mod:`interlock.files.as2_async`).

Every send is one audit entry (``files.as2.send``): message id, hash, size,
MIC and the MDN's outcome.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Final

import httpx

from interlock.audit import AuditEntry, AuditSink, Outcome, Volume
from interlock.clock import Clock, utc_now
from interlock.crypto.cms import CmsError, check_certificate, encrypt, sign
from interlock.crypto.rfc3274 import compressed_entity
from interlock.errors import InterlockError
from interlock.files.as2_mdn import Mdn, new_message_id, read_report
from interlock.files.as2_mime import entity_of, mic, payload_entity
from interlock.files.as2_profile import As2Flow
from interlock.files.as2_revocation import verify_partner
from interlock.outbound import Timeouts, outbound_async_client

__all__ = ["As2SendError", "Sent", "send"]

_MAX_MDN: Final = 1024 * 1024
_TIMEOUTS: Final = Timeouts(connect=30.0, read=300.0, write=300.0, pool=30.0)
_ENVELOPE_TYPE: Final = {
    "gcm": 'application/pkcs7-mime; smime-type=authEnveloped-data; name="smime.p7m"',
    "cbc": 'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"',
}

ClientFactory = Callable[[Path | None], httpx.AsyncClient]
"""Makes the HTTPS client for a partner from its trust anchor file (None: the system store)."""


class As2SendError(InterlockError):
    """An AS2 send failed: the partner refused it, or its MDN did not confirm it."""

    code = "as2_send_failed"


@dataclass(frozen=True)
class Sent:
    """One AS2 send: our message id, the MIC we expect back, and the MDN (None: async)."""

    message_id: str
    mic: str
    sha256: str
    size: int
    mdn: Mdn | None


def _client(anchor: Path | None) -> httpx.AsyncClient:
    return outbound_async_client(trust=anchor, timeouts=_TIMEOUTS)


async def send(
    as2: As2Flow,
    name: str,
    data: bytes,
    *,
    audit: AuditSink,
    now: Clock = utc_now,
    client: ClientFactory = _client,
) -> Sent:
    """Send ``data`` as ``name`` to the partner; raises :class:`As2SendError` unless confirmed."""
    profile = as2.partner
    message_id = new_message_id(profile.our_id)
    digest = profile.signing.rsplit("-", 1)[1]
    entity = payload_entity(name, data, as2.spec.format)
    signed_part = await asyncio.to_thread(_to_sign, as2, entity)
    expected = mic(signed_part, digest)
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        body, headers = await asyncio.to_thread(_build, as2, signed_part, message_id, now)
        mdn = await _post(as2, body, headers, client)
        _confirmed(mdn, message_id, expected)
    except (As2SendError, CmsError, httpx.HTTPError, ValueError) as error:
        reason = (
            error.message if isinstance(error, InterlockError) else "the partner is unreachable"
        )
        await audit.record_async(_entry(as2, name, message_id, expected, sha256, data, reason, now))
        raise As2SendError(reason) from None
    outcome = "mdn processed" if mdn is not None else "awaiting asynchronous mdn"
    await audit.record_async(
        _entry(as2, name, message_id, expected, sha256, data, None, now, mdn_outcome=outcome)
    )
    return Sent(message_id, expected, sha256, len(data), mdn)


def _to_sign(as2: As2Flow, entity: bytes) -> bytes:
    """What is signed, and so what the MIC covers: the payload, or its compressed entity."""
    if as2.partner.compression == "before-signing":
        return compressed_entity(entity)
    return entity


def _build(
    as2: As2Flow, signed_part: bytes, message_id: str, now: Clock
) -> tuple[bytes, dict[str, str]]:
    profile = as2.partner
    # Nothing is encrypted to a certificate that has expired, does not chain to the
    # partner's anchor, or its CA's CRL or responder says is revoked.
    check_certificate(as2.peer, at=now())
    as2.revocation.check(at=now())
    signed = sign(signed_part, as2.identity, profile.signing)
    if profile.compression == "after-signing":
        signed = compressed_entity(signed)
    digest = profile.signing.rsplit("-", 1)[1]
    envelope = encrypt(signed, as2.peer, profile.encryption, profile.key_transport)
    headers = {
        "AS2-Version": "1.2",
        "AS2-From": profile.our_id,
        "AS2-To": profile.as2_id,
        "Message-ID": message_id,
        "Date": formatdate(now().timestamp(), usegmt=True),
        "Subject": f"AS2 message from {profile.our_id}",
        "MIME-Version": "1.0",
        "Content-Type": _ENVELOPE_TYPE[profile.encryption.rsplit("-", 1)[1]],
        "Content-Transfer-Encoding": "binary",
        "Disposition-Notification-To": profile.our_id,
        "Disposition-Notification-Options": (
            "signed-receipt-protocol=required, pkcs7-signature; "
            f"signed-receipt-micalg=required, sha-{digest.removeprefix('sha')}"
        ),
    }
    if profile.mdn == "async" and profile.mdn_url is not None:
        headers["Receipt-Delivery-Option"] = profile.mdn_url
    return envelope, headers


async def _post(
    as2: As2Flow, body: bytes, headers: dict[str, str], client: ClientFactory
) -> Mdn | None:
    async with (
        client(as2.peer.anchor) as http,
        http.stream("POST", as2.partner.url, content=body, headers=headers) as response,
    ):
        answer = bytearray()
        async for chunk in response.aiter_bytes():
            answer += chunk
            if len(answer) > _MAX_MDN:
                raise As2SendError("the partner's answer is too large")
        if not response.is_success:
            raise As2SendError(f"the partner answered HTTP {response.status_code}")
        if as2.partner.mdn == "async":
            return None
        lowered = {key.lower(): value for key, value in response.headers.items()}
    return await asyncio.to_thread(check_mdn, as2, entity_of(lowered, bytes(answer)), now=utc_now)


def check_mdn(as2: As2Flow, entity: bytes, *, now: Clock = utc_now) -> Mdn:
    """An MDN entity from the partner: verified as signed by it, then read."""
    content, _ = verify_partner(entity, as2.peer, as2.revocation, at=now())
    try:
        return read_report(content)
    except ValueError:
        raise As2SendError("the MDN is not a disposition notification") from None


def _confirmed(mdn: Mdn | None, message_id: str, expected: str) -> None:
    """Raise unless the (synchronous) MDN confirms ``message_id`` with the ``expected`` MIC."""
    if mdn is not None and not mdn.confirms(message_id, expected):
        raise As2SendError(_refusal(mdn, message_id))


def _refusal(mdn: Mdn, message_id: str) -> str:
    if mdn.original_message_id != message_id:
        return "the MDN answers another message"
    if mdn.error is not None:
        return f"the partner reported processed/error: {mdn.error}"[:300]
    return "the MDN's Received-Content-MIC is not the MIC of what was sent"


def _entry(  # noqa: PLR0917  (one audit entry's facts)
    as2: As2Flow,
    name: str,
    message_id: str,
    expected: str,
    sha256: str,
    data: bytes,
    reason: str | None,
    now: Clock,
    *,
    mdn_outcome: str | None = None,
) -> AuditEntry:
    flow = as2.flow
    return AuditEntry(
        time=now(),
        actor="system:files",
        action="files.as2.send",
        integration=as2.name,
        source=flow.source,
        target=flow.target,
        data_categories=tuple(str(category) for category in flow.data_categories),
        volume=Volume(records=0, bytes=len(data)),
        outcome=Outcome(result="success" if reason is None else "failure"),
        reason=reason,
        details={
            "message_id": message_id,
            "sha256": sha256,
            "file": name,
            "mic": expected,
            "mdn": mdn_outcome or "failed",
            "partner": as2.partner_name,
            **_compression(as2),
        },
    )


def _compression(as2: As2Flow) -> dict[str, str]:
    how = as2.partner.compression
    return {} if how == "none" else {"compression": how}
