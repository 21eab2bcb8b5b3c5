"""CMS compressed data (RFC 3274) as S/MIME, the way AS2 compresses messages (RFC 5402).

asn1crypto writes and reads the ASN.1 (``ContentInfo`` of ``CompressedData``,
BER as other implementations send it included); zlib does the compression —
``id-alg-zlibCompress`` (RFC 1950), the one algorithm RFC 3274 defines.

Inflating is where a compressed message attacks its receiver (a few kilobytes
that expand to gigabytes, CWE-409): :func:`expand` inflates at most ``limit``
bytes and refuses the message beyond that, never holding more in memory. It
also refuses another algorithm, content that is not ``data``, a truncated
stream and bytes after its end. Every refusal is a :class:`CmsError` with the
``decompression-failed`` modifier RFC 5402 gives MDNs.
"""

from __future__ import annotations

import base64
import zlib
from email.message import Message
from typing import Final

from asn1crypto import cms as asn1_cms  # type: ignore[import-untyped]

from interlock.crypto.cms import CmsError

__all__ = ["COMPRESSED_TYPE", "compressed_entity", "expand", "is_compressed"]

COMPRESSED_TYPE: Final = 'application/pkcs7-mime; smime-type=compressed-data; name="smime.p7z"'
_PKCS7_MIME: Final = {"application/pkcs7-mime", "application/x-pkcs7-mime"}
_CHUNK: Final = 1024 * 1024


def is_compressed(head: Message) -> bool:
    """Whether a MIME header block announces S/MIME compressed data."""
    if head.get_content_type() not in _PKCS7_MIME:
        return False
    smime_type = head.get_param("smime-type")
    return isinstance(smime_type, str) and smime_type.strip().lower() == "compressed-data"


def compressed_entity(entity: bytes) -> bytes:
    """``entity`` (a MIME part, headers and body) as a compressed-data MIME entity.

    Base64 with CRLF lines, as Bouncy Castle and most AS2 software write it: a
    signer or verifier that canonicalises text (S/MIME's default) leaves it intact.
    """
    info = asn1_cms.ContentInfo(
        {
            "content_type": "compressed_data",
            "content": asn1_cms.CompressedData(
                {
                    "version": "v0",
                    "compression_algorithm": {"algorithm": "zlib"},
                    "encap_content_info": {
                        "content_type": "data",
                        "content": zlib.compress(entity, 6),
                    },
                }
            ),
        }
    )
    head = (
        f"Content-Type: {COMPRESSED_TYPE}\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        'Content-Disposition: attachment; filename="smime.p7z"\r\n\r\n'
    )
    der: bytes = info.dump()
    return head.encode("ascii") + base64.encodebytes(der).replace(b"\n", b"\r\n")


def expand(der: bytes, *, limit: int) -> bytes:
    """The content of a ``ContentInfo`` of ``CompressedData`` (DER or BER), at most ``limit``."""
    try:
        info = asn1_cms.ContentInfo.load(der, strict=True)
        if info["content_type"].native != "compressed_data":
            raise _failed("the part is not CMS compressed data")
        compressed = info["content"]
        if compressed["compression_algorithm"]["algorithm"].native != "zlib":
            raise _failed("the compression algorithm is not zlib (RFC 3274)")
        encapsulated = compressed["encap_content_info"]
        if encapsulated["content_type"].native != "data":
            raise _failed("the compressed content is not data")
        stream = encapsulated["content"]
        if stream is None:
            raise _failed("the compressed data has no content")
        data = bytes(stream)
    except (ValueError, TypeError, KeyError):
        raise _failed("the compressed data cannot be read") from None
    return _inflate(data, limit)


def _inflate(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj()
    out = bytearray()
    pending = data
    try:
        while pending and not inflater.eof:
            out += inflater.decompress(pending, min(_CHUNK, limit + 1 - len(out)))
            if len(out) > limit:
                raise _failed(f"the compressed content expands beyond {limit} bytes")
            pending = inflater.unconsumed_tail
        if not inflater.eof:
            out += inflater.flush()
    except zlib.error:
        raise _failed("the compressed content is not a valid zlib stream") from None
    if not inflater.eof:
        raise _failed("the compressed content is truncated")
    if inflater.unused_data:
        raise _failed("bytes follow the end of the compressed content")
    if len(out) > limit:
        raise _failed(f"the compressed content expands beyond {limit} bytes")
    return bytes(out)


def _failed(reason: str) -> CmsError:
    return CmsError("decompression-failed", reason)
