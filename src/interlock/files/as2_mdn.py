"""Message disposition notifications (RFC 8098, RFC 4130 §7.4): build, sign, read, check.

An MDN is a ``multipart/report; report-type=disposition-notification``: a
human-readable line, then the ``message/disposition-notification`` fields —
``Original-Message-ID``, ``Received-Content-MIC`` (RFC 4130 §7.3.1) and
``Disposition`` (``automatic-action/MDN-sent-automatically; processed``, or
``processed/error: MODIFIER``). Interlock's MDNs say no more than that: the
modifier names the class of failure, never its details — except what concerns
the partner's own certificate (revoked, or its revocation status unknown).
"""

from __future__ import annotations

import email
import email.policy
import hmac
import secrets
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from typing import Final

from interlock.files.as2_mime import header_block, split

__all__ = ["Mdn", "build_report", "new_message_id", "read_report", "requested"]

_DISPOSITION: Final = "automatic-action/MDN-sent-automatically; processed"
_TEXT: Final = {
    None: "The AS2 message was received and its content accepted.",
    "authentication-failed": "The message's signature could not be verified.",
    "decryption-failed": "The message could not be decrypted.",
    "integrity-check-failed": "The message's integrity could not be checked.",
    "insufficient-message-security": "The message lacks the required signature or encryption.",
    "unexpected-processing-error": "The message could not be processed.",
}


@dataclass(frozen=True)
class Mdn:
    """What an MDN says: the message it answers, the MIC, and the disposition."""

    original_message_id: str
    mic: str | None
    disposition: str

    @property
    def error(self) -> str | None:
        """The error modifier (``decryption-failed``...), None when processed without error."""
        _, _, modifier = self.disposition.partition(";")
        kind, _, detail = modifier.strip().partition(":")
        if kind.strip().lower() == "processed":
            return None
        found = detail.strip() or kind.strip() or "unknown"
        # The partner's words, for the audit log: printable ASCII, bounded.
        return "".join(c if " " <= c <= "~" else "?" for c in found[:100])

    def confirms(self, message_id: str, mic: str) -> bool:
        """True when this MDN answers ``message_id``, processed, with exactly ``mic``."""
        same_id = hmac.compare_digest(self.original_message_id.encode(), message_id.encode())
        same_mic = self.mic is not None and hmac.compare_digest(
            _normal_mic(self.mic).encode(), _normal_mic(mic).encode()
        )
        return same_id and same_mic and self.error is None


def new_message_id(our_id: str) -> str:
    """A fresh ``Message-ID`` (RFC 5322 form): random, with our AS2 id as the domain."""
    domain = "".join(c for c in our_id if c.isalnum() or c in ".-") or "interlock"
    return f"<{secrets.token_hex(16)}@{domain}>"


def requested(options: str | None) -> tuple[bool, str]:
    """From ``Disposition-Notification-Options``: (signed receipt asked, MIC digest name)."""
    signed, digest = False, "sha256"
    for parameter in (options or "").split(";"):
        name, _, value = parameter.partition("=")
        values = [v.strip().lower() for v in value.split(",")]
        if name.strip().lower() == "signed-receipt-protocol" and "pkcs7-signature" in values:
            signed = True
        if name.strip().lower() == "signed-receipt-micalg":
            for wanted in values[1:]:
                if wanted.replace("-", "") in {"sha256", "sha384", "sha512"}:
                    digest = wanted.replace("-", "")
                    break
    return signed, digest


def build_report(
    *,
    original_message_id: str,
    our_id: str,
    mic: str | None,
    error: str | None,
    text: str | None = None,
) -> bytes:
    """The ``multipart/report`` MIME entity of an MDN (unsigned; sign it to send).

    ``text``: the human-readable line, when there is more to say than the
    modifier's class (the partner's own certificate's revocation status); printable ASCII.
    """
    boundary = f"----=_MDN_{secrets.token_hex(12)}"
    fields = {
        "Reporting-UA": "interlock",
        "Original-Recipient": f"rfc822; {our_id}",
        "Final-Recipient": f"rfc822; {our_id}",
        "Original-Message-ID": original_message_id,
    }
    if mic is not None:
        fields["Received-Content-MIC"] = mic
    fields["Disposition"] = _DISPOSITION + ("" if error is None else f"/error: {error}")
    line = _TEXT.get(error, _TEXT["unexpected-processing-error"])
    if text is not None:
        line = "".join(c if " " <= c <= "~" else "?" for c in text[:300])
    return (
        "Content-Type: multipart/report; report-type=disposition-notification; "
        f'boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{line}\r\n"
        f"--{boundary}\r\nContent-Type: message/disposition-notification\r\n\r\n"
        f"{header_block(fields)}\r\n--{boundary}--\r\n"
    ).encode("ascii")


def read_report(entity: bytes) -> Mdn:
    """The fields of a ``multipart/report`` MDN entity; ValueError when it is none."""
    headers, _ = split(entity)
    message = email.message_from_bytes(entity, policy=email.policy.compat32)
    if headers.get_content_type() != "multipart/report" or not message.is_multipart():
        raise ValueError("the MDN is not a multipart/report")
    for part in message.walk():
        if part.get_content_type() == "message/disposition-notification":
            fields = _fields(part)
            original = fields.get("Original-Message-ID")
            disposition = fields.get("Disposition")
            if original is None or disposition is None:
                raise ValueError("the MDN lacks Original-Message-ID or Disposition")
            mic = fields.get("Received-Content-MIC")
            return Mdn(" ".join(original.split()), mic and " ".join(mic.split()), disposition)
    raise ValueError("the MDN has no disposition-notification part")


def _fields(part: Message) -> Message:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    if isinstance(payload, str):
        return HeaderParser().parsestr(payload)
    raise ValueError("the disposition-notification part is empty")


def _normal_mic(value: str) -> str:
    digest, _, algorithm = value.partition(",")
    return f"{digest.strip()},{algorithm.strip().lower()}"
