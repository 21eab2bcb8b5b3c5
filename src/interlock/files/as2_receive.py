"""Receive an AS2 message (RFC 4130): identify, open, verify, refuse replays, quarantine, answer.

For one inbound AS2 integration, :meth:`As2Receiver.receive` takes the HTTP
headers (lower-case names) and body and:

1. identifies the partner: ``AS2-From`` must be the partner's ``as2_id`` and
   ``AS2-To`` our ``our_id`` (else 403, no MDN: we do not answer strangers);
2. decrypts (:func:`~interlock.crypto.cms.decrypt`; an unencrypted message is
   refused when the profile requires encryption), and expands compressed data
   (RFC 5402, before or after signing, one layer, bounded by ``max_size``);
3. verifies the signature by the partner's pinned certificate, chained to its
   trust anchor, valid now, not revoked by its CRL or OCSP responder as the
   profile says (:func:`~interlock.files.as2_revocation.verify_partner`;
   unsigned is refused when required), and computes the MIC of what was signed;
4. refuses a ``Message-ID`` the partner used before, and signed content it sent
   before under another one (the replay store; the ``Message-ID`` header is not
   signed, so a captured message could be posted again under a new one);
5. hands the payload to the integration's quarantine, which checks it before
   anything processes it;
6. answers with an MDN — signed when asked — carrying the MIC and
   ``processed`` or ``processed/error: MODIFIER``; synchronously in the HTTP
   response, or asynchronously to a URL on the partner's own origin — only for a
   message whose signature verified: anyone knowing the public AS2 ids could
   otherwise make Interlock sign and post an MDN for a ``Message-ID`` of their
   choosing to the partner. Any other message gets its answer synchronously.

Every message is one audit entry (``files.as2.receive``) with its message id,
hash, size and outcome; the quarantine adds its ``files.receive``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import Message
from typing import Final, Literal, cast
from urllib.parse import urlsplit

from interlock.audit import AuditEntry, AuditSink, Outcome, Volume
from interlock.clock import Clock, utc_now
from interlock.config.files import As2Signing
from interlock.crypto.cms import CmsError, decrypt, sign
from interlock.crypto.rfc3274 import expand, is_compressed
from interlock.files.as2_mdn import build_report, new_message_id, requested
from interlock.files.as2_mime import (
    decode_base64,
    entity_of,
    http_parts,
    mic,
    split,
    transfer_decoded,
)
from interlock.files.as2_profile import As2Flow
from interlock.files.as2_revocation import verify_partner
from interlock.files.quarantine import Quarantine
from interlock.replay.seen import SeenOnce

__all__ = ["As2Answer", "As2Receiver", "MdnDelivery"]

_REPLAY_WINDOW: Final = timedelta(days=400)
_MAX_ID: Final = 200  # a Message-ID longer than this is refused (RFC 5322 allows 998)
_ENVELOPES: Final = {"application/pkcs7-mime", "application/x-pkcs7-mime"}
_EXTENSIONS: Final = {"csv": ".csv", "xml": ".xml", "json": ".json", "edi": ".edi"}


@dataclass(frozen=True)
class MdnDelivery:
    """An asynchronous MDN to post: where, with which headers, what body."""

    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class As2Answer:
    """The HTTP answer to an AS2 request; ``problem``: refused without an MDN (RFC 9457 title)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    problem: str | None = None
    deliver: MdnDelivery | None = None


@dataclass(frozen=True)
class _Opened:
    """An opened message: the payload entity, what was signed (the MIC's input), how."""

    content: bytes
    signed: bytes
    digest: str
    compression: str | None = None  # before-signing, after-signing or unsigned
    verified: bool = False  # signed, and the partner's signature verified


@dataclass(frozen=True)
class _Outcome:
    error: str | None  # the MDN's error modifier; None: processed
    reason: str  # for the audit log
    mic: str | None = None
    sha256: str | None = None
    size: int = 0
    tell: str | None = None  # a sentence for the partner in the MDN (its certificate's status)
    compression: str | None = None  # before-signing, after-signing or unsigned; None: none
    verified: bool = False  # the partner's signature verified: an async MDN may be posted


class As2Receiver:
    """The receiving side of one inbound AS2 integration."""

    def __init__(
        self,
        as2: As2Flow,
        *,
        quarantine: Quarantine,
        seen: SeenOnce,
        audit: AuditSink,
        now: Clock = utc_now,
        post_mdn: Callable[[MdnDelivery], Awaitable[str | None]] | None = None,
    ) -> None:
        """``post_mdn`` delivers an asynchronous MDN: None when done, else why not.

        Without it, a request for an asynchronous MDN is refused.
        """
        self._as2 = as2
        self._quarantine = quarantine
        self._seen = seen
        self._audit = audit
        self._now = now
        self._post_mdn = post_mdn
        self._deliveries: set[asyncio.Task[None]] = set()

    async def receive(self, headers: Mapping[str, str], body: bytes) -> As2Answer:
        """Take one AS2 request (``headers`` with lower-case names); the answer to send."""
        profile = self._as2.partner
        message_id = " ".join(headers.get("message-id", "").split())
        shown = _printable(message_id)
        sender = headers.get("as2-from", "").strip().strip('"')
        receiver = headers.get("as2-to", "").strip().strip('"')
        if sender != profile.as2_id or receiver != profile.our_id:
            await self._record(shown, _Outcome("authentication-failed", "unknown partner"))
            return As2Answer(403, problem="unknown AS2 partner")
        if not message_id or len(message_id) > _MAX_ID or shown != message_id:
            refused = _Outcome("unexpected-processing-error", "no Message-ID of printable ASCII")
            await self._record(shown, refused)
            return As2Answer(400, problem="the AS2 message has no valid Message-ID")
        outcome = await self._process(headers, body, message_id)
        await self._record(message_id, outcome)
        return await self._answer(headers, message_id, outcome)

    async def _process(self, headers: Mapping[str, str], body: bytes, message_id: str) -> _Outcome:
        try:
            opened = await asyncio.to_thread(self._open, headers, body)
        except CmsError as refused:
            return _Outcome(refused.disposition, refused.reason, tell=refused.tell)
        compression, verified = opened.compression, opened.verified
        received_mic = mic(opened.signed, opened.digest)
        if (repeated := await self._repeated(message_id, opened)) is not None:
            return _Outcome(
                "unexpected-processing-error",
                repeated,
                received_mic,
                compression=compression,
                verified=verified,
            )
        try:
            name, data = _payload(opened.content, self._as2.spec.format, message_id)
        except ValueError:
            return _Outcome(
                "unexpected-processing-error",
                "the payload is no MIME part",
                compression=compression,
                verified=verified,
            )
        verdict = await self._quarantine.accept(name, data)
        if not verdict.accepted:
            return _Outcome(
                "unexpected-processing-error",
                "refused in quarantine",
                received_mic,
                verdict.sha256,
                verdict.size,
                compression=compression,
                verified=verified,
            )
        return _Outcome(
            None,
            "accepted",
            received_mic,
            verdict.sha256,
            verdict.size,
            compression=compression,
            verified=verified,
        )

    async def _repeated(self, message_id: str, opened: _Opened) -> str | None:
        """Why the message is a replay (its Message-ID, or its signed content, seen before)."""
        until = self._now() + _REPLAY_WINDOW
        where = f"{self._as2.name}:{self._as2.partner.as2_id}"
        first = await asyncio.to_thread(
            self._seen.first_use, "as2-message", f"{where}:{message_id}", until
        )
        if not first:
            return "duplicate Message-ID"
        if not opened.verified:  # unsigned content may repeat; nobody vouched for it anyway
            return None
        # The signed bytes carry the signature's own attributes (signing time), so a file
        # sent again is signed anew; the very same bytes again are a replay.
        digest = hashlib.sha256(opened.signed).hexdigest()
        first = await asyncio.to_thread(
            self._seen.first_use, "as2-content", f"{where}:{digest}", until
        )
        return None if first else "duplicate signed content"

    def _open(self, headers: Mapping[str, str], body: bytes) -> _Opened:
        """Decrypt, expand and verify as the profile requires (RFC 5402: compressed either side
        of the signature, once at most)."""
        profile = self._as2.partner
        try:
            entity = entity_of(headers, body)
        except ValueError:
            raise CmsError(
                "unexpected-processing-error", "the message has malformed MIME headers"
            ) from None
        head, _ = _headers(entity)
        if head.get_content_type() in _ENVELOPES and not is_compressed(head):
            _, der = split(entity)
            if "base64" in str(head.get("Content-Transfer-Encoding", "")).lower():
                der = _base64(der)
            try:
                entity = _decrypt(der, self._as2, profile.key_transport, at=self._now())
            except CmsError:
                renewed = self._as2.renewed()  # our certificate renewed since we started?
                if renewed is None:
                    raise
                self._as2 = renewed  # MDNs are signed with the new certificate from now on
                entity = _decrypt(der, self._as2, profile.key_transport, at=self._now())
            head, _ = _headers(entity)
        elif profile.require_encrypted:
            raise CmsError("insufficient-message-security", "the message is not encrypted")
        outer = is_compressed(head)
        if outer:
            entity, head = self._expand(entity)
        if head.get_content_type() == "multipart/signed":
            signed, digest = verify_partner(
                entity, self._as2.peer, self._as2.revocation, at=self._now()
            )
            if outer:
                return _Opened(signed, signed, digest, "after-signing", verified=True)
            if is_compressed(_headers(signed)[0]):
                content, _ = self._expand(signed)
                return _Opened(content, signed, digest, "before-signing", verified=True)
            return _Opened(signed, signed, digest, verified=True)
        if profile.require_signed:
            raise CmsError("insufficient-message-security", "the message is not signed")
        # Unsigned: the MIC covers the content as it was before compression (RFC 5402 §4).
        return _Opened(entity, entity, "sha256", "unsigned" if outer else None)

    def _expand(self, entity: bytes) -> tuple[bytes, Message]:
        """The entity a compressed one carries, and its headers; a second layer is refused."""
        head, body = _headers(entity)
        # The payload's own base64 makes it a third larger; its headers fit in 64 KiB.
        limit = self._as2.spec.max_size * 4 // 3 + 64 * 1024
        try:
            der = transfer_decoded(head, body)
        except ValueError as error:
            raise CmsError("decompression-failed", f"the compressed part {error}") from None
        inner = expand(der, limit=limit)
        inner_head, _ = _headers(inner)
        if is_compressed(inner_head):
            raise CmsError("decompression-failed", "the message is compressed more than once")
        return inner, inner_head

    async def _answer(
        self, headers: Mapping[str, str], message_id: str, outcome: _Outcome
    ) -> As2Answer:
        if "disposition-notification-to" not in headers:
            if outcome.error is None:
                return As2Answer(200)
            return As2Answer(400, problem="the AS2 message was refused")
        signed, digest = requested(headers.get("disposition-notification-options"))
        report = build_report(
            original_message_id=message_id,
            our_id=self._as2.partner.our_id,
            mic=outcome.mic,
            error=outcome.error,
            text=outcome.tell,
        )
        profile = self._as2.partner
        signing = cast("As2Signing", f"{profile.signing.rsplit('-', 1)[0]}-{digest}")
        entity = (
            await asyncio.to_thread(sign, report, self._as2.identity, signing) if signed else report
        )
        mime_headers, mdn_body = http_parts(entity)
        mdn_headers = {
            "AS2-Version": "1.2",
            "AS2-From": profile.our_id,
            "AS2-To": profile.as2_id,
            "Message-ID": new_message_id(profile.our_id),
            "MIME-Version": "1.0",
            **mime_headers,
        }
        url = headers.get("receipt-delivery-option")
        if url is None or not outcome.verified:  # only a verified partner's message is posted
            return As2Answer(200, mdn_headers, mdn_body)
        if self._post_mdn is None or not _same_origin(url.strip(), profile.url):
            return As2Answer(400, problem="asynchronous MDNs go to the partner's own origin only")
        delivery = MdnDelivery(url.strip(), mdn_headers, mdn_body)
        task = asyncio.create_task(self._deliver(delivery, message_id))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)
        return As2Answer(200, deliver=delivery)

    async def drain(self) -> None:
        """Wait for the asynchronous MDNs still being delivered."""
        while self._deliveries:
            await asyncio.gather(*self._deliveries)

    async def _deliver(self, delivery: MdnDelivery, message_id: str) -> None:
        """Post the MDN after the HTTP answer has gone; the delivery is audited either way."""
        if self._post_mdn is None:
            return
        failure = await self._post_mdn(delivery)
        flow = self._as2.flow
        await self._audit.record_async(
            AuditEntry(
                time=self._now(),
                actor="system:files",
                action="files.as2.mdn_sent",
                integration=self._as2.name,
                source=flow.source,
                target=flow.target,
                outcome=Outcome(result="success" if failure is None else "failure"),
                reason=failure,
                details={"message_id": message_id[:200], "partner": self._as2.partner_name},
            )
        )

    async def _record(self, message_id: str, outcome: _Outcome) -> None:
        flow = self._as2.flow
        await self._audit.record_async(
            AuditEntry(
                time=self._now(),
                actor=f"partner:{self._as2.partner_name}",
                action="files.as2.receive",
                integration=self._as2.name,
                source=flow.source,
                target=flow.target,
                data_categories=tuple(str(c) for c in flow.data_categories),
                volume=Volume(records=0, bytes=outcome.size),
                outcome=Outcome(result="success" if outcome.error is None else "failure"),
                reason=None if outcome.error is None else f"{outcome.error}: {outcome.reason}",
                details={
                    "message_id": message_id[:200],
                    "sha256": outcome.sha256 or "",
                    "mic": outcome.mic or "",
                    "partner": self._as2.partner_name,
                    **({"compression": outcome.compression} if outcome.compression else {}),
                },
            )
        )


def _decrypt(
    der: bytes,
    as2: As2Flow,
    key_transport: Literal["rsa-oaep", "rsa-pkcs1"],
    *,
    at: datetime,
) -> bytes:
    """Open the envelope with our current key, else a renewed certificate's (until it expires).

    A partner may still encrypt to the certificate Interlock renewed; each
    one unexpired ``at`` is tried in turn, the error of the current one kept.
    """
    try:
        return decrypt(der, as2.identity, key_transport)
    except CmsError as first:
        for identity in as2.previous:
            if identity.certificate.not_valid_after_utc <= at:  # expired: opens nothing
                continue
            try:
                return decrypt(der, identity, key_transport)
            except CmsError:
                continue
        raise first from None


def _headers(entity: bytes) -> tuple[Message, bytes]:
    try:
        return split(entity)
    except ValueError:
        raise CmsError("unexpected-processing-error", "the message has no MIME headers") from None


def _base64(data: bytes) -> bytes:
    try:
        return decode_base64(data)
    except ValueError:
        raise CmsError("decryption-failed", "the envelope is not valid base64") from None


def _payload(content: bytes, file_format: str, message_id: str) -> tuple[str, bytes]:
    """The file name (from Content-Disposition, else from the message id) and its bytes.

    ValueError when it is no MIME part, or its transfer encoding cannot be undone.
    """
    head, body = split(content)
    body = transfer_decoded(head, body)
    name = head.get_filename()
    if not isinstance(name, str):  # a bad name is the quarantine's to refuse, and audit
        digest = hashlib.sha256(message_id.encode()).hexdigest()[:16]
        name = f"as2-{digest}{_EXTENSIONS.get(file_format, '.bin')}"
    return name, body


def _printable(value: str) -> str:
    """``value`` with anything but printable ASCII replaced (for the audit), at most 200 long."""
    return "".join(c if " " <= c <= "~" else "?" for c in value[:200])


def _same_origin(url: str, partner_url: str) -> bool:
    wanted, declared = urlsplit(url), urlsplit(partner_url)
    return (
        wanted.scheme == "https"
        and (wanted.hostname, wanted.port) == (declared.hostname, declared.port)
        and not wanted.username
    )
