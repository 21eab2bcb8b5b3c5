"""The sealed-message format's shared parts: algorithms, header parameters, field paths.

What :mod:`interlock.messaging.envelope` writes and
:mod:`interlock.messaging.opening` checks (the format itself is described in
the envelope module).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Any, Final

from joserfc import jwe
from joserfc.registry import HeaderParameter, HeaderRegistryDict

__all__ = [
    "CONTENT_ENCRYPTION",
    "EVENT_NAMES",
    "FACT_NAMES",
    "FACT_REGISTRY",
    "FIELDS_HEADER",
    "FIELD_CTY",
    "KEY_ALGORITHMS",
    "KEY_CTY",
    "MAX_HEADER",
    "MAX_RECIPIENTS",
    "NESTED_CTY",
    "SIGNING_ALGORITHMS",
    "WINDOW_ALGORITHM",
    "jwe_registry",
    "map_fields",
    "payload_bytes",
]

SIGNING_ALGORITHMS: Final = frozenset({"ES256", "Ed25519"})
KEY_ALGORITHMS: Final = frozenset({"ECDH-ES+A256KW", "RSA-OAEP-256"})
CONTENT_ENCRYPTION: Final = "A256GCM"
#: A message under a window key wraps its content key with that key (RFC 7518 §4.4).
WINDOW_ALGORITHM: Final = "A256KW"
KEY_CTY: Final = "jwk+json"  # RFC 7517 §7: the JWE's plaintext is a JWK (the window key)
#: The JWS protected header parameter listing the encrypted field paths (a private
#: name, RFC 7515 §4.3, prefixed to avoid collisions).
FIELDS_HEADER: Final = "interlock_encrypted_fields"
NESTED_CTY: Final = "JOSE"  # RFC 7516 §4.1.12: the JWE's plaintext is a JWS
FIELD_CTY: Final = "json"  # an encrypted field's plaintext is a JSON value
#: The message facts as replicated claims (RFC 7519 §5.3) in every protected header.
FACT_NAMES: Final = ("jti", "iss", "aud", "iat", "exp")
#: A sealed event's subject, schema id and schema version (private names, RFC 7515 §4.3,
#: prefixed against collisions), in every protected header beside the facts.
EVENT_NAMES: Final = ("interlock_subject", "interlock_schema_id", "interlock_schema_version")
MAX_RECIPIENTS: Final = 32  # MessagingSpec.consumers' maximum
MAX_HEADER: Final = 8192  # bytes of a protected header (base64url)

FACT_REGISTRY: Final[HeaderRegistryDict] = {
    "jti": HeaderParameter("Message id (RFC 7519 §5.3 replicated claim)", "str", True),
    "iss": HeaderParameter("Producer", "str", True),
    "aud": HeaderParameter("Integration", "str", True),
    "iat": HeaderParameter("Issued at (NumericDate)", "int", True),
    "exp": HeaderParameter("Expires at (NumericDate)", "int", True),
    "interlock_subject": HeaderParameter("Event subject", "str"),
    "interlock_schema_id": HeaderParameter("Event schema id", "int"),
    "interlock_schema_version": HeaderParameter("Event schema version", "int"),
}


def payload_bytes(payload: Any) -> bytes:
    """The payload as signed: compact JSON, keys sorted, UTF-8, no NaN.

    Not :func:`interlock.proofs.canonical.canonical_json`: business payloads
    hold decimals and nest deeper than audit entries; the bytes are signed as
    sent, so the receiver needs no canonical form, only a stable one.
    """
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


@functools.lru_cache(maxsize=64)
def jwe_registry(max_bytes: int = 0, *, window: bool = False) -> jwe.JWERegistry:
    """joserfc's JWE registry for messages: our algorithms, the fact headers, size caps.

    ``window``: the registry of a JWE under a window key (``A256KW`` only), not
    of one to a consumer's key. One registry per set of arguments, shared (a
    registry is configuration; nothing changes it once made).
    """
    registry = jwe.JWERegistry(
        header_registry=FACT_REGISTRY,
        algorithms=[*([WINDOW_ALGORITHM] if window else KEY_ALGORITHMS), CONTENT_ENCRYPTION],
        max_recipients=MAX_RECIPIENTS,
    )
    if max_bytes:
        # joserfc's default ciphertext cap (64 KiB) is below max_message's default.
        registry.max_ciphertext_length = max(registry.max_ciphertext_length, 2 * max_bytes)
        registry.max_protected_header_length = MAX_HEADER
    return registry


def map_fields(value: Any, paths: Sequence[str], change: Callable[[Any], Any]) -> Any:
    """``value`` with ``change`` applied in place to every value at each of ``paths``."""
    for path in paths:
        _map_path(value, path.split("."), change)
    return value


def _map_path(value: Any, segments: list[str], change: Callable[[Any], Any]) -> None:
    # Missing members and values of another shape are skipped: nothing is there to seal.
    if not isinstance(value, dict) or not segments:
        return
    segment, rest = segments[0], segments[1:]
    name = segment.removesuffix("[]")
    if name not in value:
        return
    if segment.endswith("[]"):
        items = value[name]
        if not isinstance(items, list):
            return
        for index, item in enumerate(items):
            if rest:
                _map_path(item, rest, change)
            else:
                items[index] = change(item)
    elif rest:
        _map_path(value[name], rest, change)
    else:
        value[name] = change(value[name])
