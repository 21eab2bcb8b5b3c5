"""The MIME of AS2 (RFC 4130): the payload part, the MIC, and entities split for HTTP.

An AS2 message is a MIME entity whose outer headers travel as HTTP headers
(RFC 4130 §5.2): :func:`http_parts` splits an entity for sending,
:func:`entity_of` puts one back together from a request or response. The
MIC (RFC 4130 §7.3.1) is a digest of the signed part — headers and body as
signed, byte for byte — or, unsigned, of the content as received.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import email.utils
import hashlib
import re
from collections.abc import Mapping
from email.message import Message
from typing import Final

__all__ = [
    "decode_base64",
    "entity_of",
    "header_block",
    "http_parts",
    "mic",
    "payload_entity",
    "split",
    "transfer_decoded",
]

_CONTENT_TYPES: Final = {
    "csv": "text/csv",
    "xml": "application/xml",
    "json": "application/json",
    "edi": "application/edi-x12",
    "binary": "application/octet-stream",
}
_MIC_NAMES: Final = {"sha256": "sha-256", "sha384": "sha-384", "sha512": "sha-512"}
_ENTITY_HEADERS: Final = ("content-type", "content-transfer-encoding", "content-disposition")
_MAX_HEADER: Final = 8192
# RFC 2045 §3 / RFC 5322 §2.1: the header block ends at the first empty line, CRLF or LF alike.
_BLANK_LINE: Final = re.compile(rb"\r?\n\r?\n")


def payload_entity(name: str, data: bytes, file_format: str) -> bytes:
    """The payload MIME part: type by format, binary, the file name (already checked safe)."""
    headers = (
        f"Content-Type: {_CONTENT_TYPES.get(file_format, 'application/octet-stream')}\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        f'Content-Disposition: attachment; filename="{email.utils.quote(name)}"\r\n\r\n'
    )
    return headers.encode("utf-8") + data


def mic(content: bytes, digest: str) -> str:
    """``Received-Content-MIC`` of ``content``: base64 digest, then the algorithm's name."""
    value = hashlib.new(digest, content).digest()
    return f"{base64.b64encode(value).decode('ascii')}, {_MIC_NAMES[digest]}"


def split(entity: bytes) -> tuple[Message, bytes]:
    """An entity's header block (parsed by :mod:`email`) and its body bytes, untouched.

    The block ends at the first blank line of either kind: looking for CRLF CRLF
    first cut a body holding one out of LF-only headers, losing its start.
    """
    if entity.startswith((b"\r\n", b"\n")):  # no headers at all
        return Message(), entity.split(b"\n", 1)[1]
    end = _BLANK_LINE.search(entity, 0, _MAX_HEADER + 4)
    if end is None:
        raise ValueError("the MIME entity has no header block")
    head, body = entity[: end.end()], entity[end.end() :]
    return email.message_from_bytes(head, policy=email.policy.compat32), body


def decode_base64(data: bytes) -> bytes:
    """Base64 as MIME carries it: line breaks ignored, anything else strict; ValueError if not."""
    try:
        return base64.b64decode(b"".join(data.split()), validate=True)
    except binascii.Error:
        raise ValueError("is not valid base64") from None


def transfer_decoded(head: Message, body: bytes) -> bytes:
    """A part's body with its ``Content-Transfer-Encoding`` undone (base64, or none).

    ValueError ("is not valid base64", "has an unsupported transfer encoding").
    """
    encoding = str(head.get("Content-Transfer-Encoding", "binary")).strip().lower()
    if encoding == "base64":
        return decode_base64(body)
    if encoding not in {"binary", "8bit", "7bit"}:
        raise ValueError("has an unsupported transfer encoding")
    return body


def http_parts(entity: bytes) -> tuple[dict[str, str], bytes]:
    """The entity's MIME headers (those HTTP carries) and its body, for sending over HTTP."""
    headers, body = split(entity)
    found = {
        name: " ".join(str(value).split())
        for name in ("Content-Type", "Content-Transfer-Encoding", "Content-Disposition")
        if (value := headers.get(name)) is not None
    }
    return found, body


def entity_of(headers: Mapping[str, str], body: bytes) -> bytes:
    """The MIME entity an HTTP message carries: its content headers, then its body.

    ValueError when a header holds a character outside latin-1 (RFC 9110 §5.5:
    field values are octets; a server decoding them as UTF-8 hands such text on).
    """
    lines = []
    for name in _ENTITY_HEADERS:
        value = headers.get(name) or headers.get(name.title())
        if value is not None:
            lines.append(f"{name.title()}: {' '.join(value.split())}\r\n")
    try:
        head = "".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError("a MIME header holds a character outside latin-1") from None
    return head + b"\r\n" + body


def header_block(fields: Mapping[str, str]) -> str:
    """``Name: value`` lines (CRLF), values folded to one line."""
    return "".join(f"{name}: {' '.join(value.split())}\r\n" for name, value in fields.items())
