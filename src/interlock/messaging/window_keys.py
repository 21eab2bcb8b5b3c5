"""Window keys: one key agreement per window and set of consumers, not one per message.

Sealed to a consumer's key directly, every message costs an ECDH-ES key
agreement — a fresh ephemeral key and an exchange on the producer, an
exchange on each consumer (RFC 7518 §4.6 wants a new ephemeral key per
agreement) — several times the cost of the signature and of the broker's
own work. Under a window key the agreement is made once per window:

* the producer draws a random 256-bit key, the *window key* (an ``oct`` JWK,
  ``alg: A256KW``, a random ``kid``), and encrypts it to the consumers' keys
  as an encrypted JWK (RFC 7517 §7: a JWE with ``cty: "jwk+json"``, compact
  for one consumer, general JSON for several), with the integration's key
  algorithm (``ECDH-ES+A256KW`` or ``RSA-OAEP-256``). Its protected header
  names the producer (``iss``), the integration (``aud``) and the window:
  ``iat``, the issue time of its first message, and ``exp``, when the producer
  stops using it;
* each message's JWE wraps its own fresh content key with the window key
  (``alg: A256KW``, RFC 7518 §4.4; ``kid``: the window key's) and carries the
  message's facts in its protected header as before;
* the message travels as one JSON object, :data:`CONTENT_TYPE_KEYED`:
  ``{"key": <the encrypted window key>, "message": <the JWE>}`` (with
  encrypted fields, ``message`` is the signed JWS whose fields are JWEs under
  the window key). It stays readable on its own wherever it is stored (dead
  letters, archives) by the consumer's private key and any JOSE library:
  decrypt ``key``, import the JWK, decrypt ``message``, verify the JWS.

A window ends after the integration's ``key_window`` (default
:data:`WINDOW_AGE`) or :data:`WINDOW_USES` messages, when the recipients
change (a rotated consumer key starts a new window at once) or when the
producer's clock goes back. The consumer requires the encrypted key's
producer and integration to be the signed ones and the message's issue time
to fall inside the key's window; a key encrypted to another consumer does not
decrypt. Consumers cache the window keys they decrypted
(:class:`WindowKeyCache`), each under the exact encrypted key and the
consumer key that opened it, and use an entry only while that consumer key is
still one of theirs: a retired key's windows stop opening with it.

What a window trades: a message's content key is fresh and random, as before,
but everyone who can decrypt one message of a window can decrypt the others
of that window (they are all addressed to the same consumers), and the window
key lives in the producer's memory for the window's length.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from joserfc.jwk import OctKey

from interlock.config.messaging import KEY_WINDOW

__all__ = [
    "WINDOW_AGE",
    "WINDOW_USES",
    "KeyWindows",
    "Window",
    "WindowKeyCache",
]

WINDOW_AGE: Final = KEY_WINDOW  # the manifest's default key_window
WINDOW_USES: Final = 100_000
_CACHE_ENTRIES: Final = 1024


@dataclass(frozen=True)
class Window:
    """A window key, what carries it (the encrypted JWK), and when it began."""

    key: OctKey = field(repr=False)
    encrypted: str | dict[str, Any] = field(repr=False)
    started: datetime


@dataclass
class _Use:
    window: Window
    uses: int = 0


class KeyWindows:
    """The producer's current window key per integration and set of recipients.

    Thread-safe: a producer may seal in worker threads.
    """

    def __init__(self, *, age: timedelta = WINDOW_AGE, uses: int = WINDOW_USES) -> None:
        """Windows of at most ``age`` and ``uses`` messages."""
        if age <= timedelta(0) or uses < 1:
            raise ValueError("a window lasts a positive time and at least one message")
        self.age = age
        self._uses = uses
        self._current: dict[Hashable, _Use] = {}
        self._lock = threading.Lock()

    def window(self, label: Hashable, now: datetime, begin: Callable[[], Window]) -> Window:
        """The window for ``label`` at ``now``; ``begin()`` makes a new one when due."""
        with self._lock:
            use = self._current.get(label)
            if (
                use is None
                or use.uses >= self._uses
                or not use.window.started <= now < use.window.started + self.age
            ):
                # Windows of retired recipients (a rotated key) are not kept either.
                self._current = {
                    held: kept
                    for held, kept in self._current.items()
                    if kept.window.started <= now < kept.window.started + self.age
                }
                use = self._current[label] = _Use(begin())
            use.uses += 1
            return use.window

    def __len__(self) -> int:
        """How many windows are held."""
        return len(self._current)


class WindowKeyCache:
    """Window keys a consumer decrypted, by encrypted key and the consumer key that opened it.

    Bounded (oldest out first) and thread-safe. An entry is only as good as
    the key that opened it: :meth:`get` returns it only while that key is
    still among the caller's decryption keys.
    """

    def __init__(self, entries: int = _CACHE_ENTRIES) -> None:
        """At most ``entries`` window keys."""
        self._entries = entries
        self._keys: dict[tuple[str, str], tuple[OctKey, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, encrypted: str, kid: str) -> tuple[OctKey, dict[str, Any]] | None:
        """The window key (and its encrypted JWK's protected header) opened by ``kid``."""
        with self._lock:
            return self._keys.get((encrypted, kid))

    def put(self, encrypted: str, kid: str, key: OctKey, header: dict[str, Any]) -> None:
        """Remember a window key that ``kid`` decrypted from ``encrypted``."""
        with self._lock:
            if len(self._keys) >= self._entries:
                del self._keys[next(iter(self._keys))]
            self._keys[(encrypted, kid)] = (key, header)

    def __len__(self) -> int:
        """How many window keys are held."""
        return len(self._keys)
