"""The few OpenSSL calls the listener needs and Python's :mod:`ssl` lacks.

Key-exchange groups (before Python 3.13), ending a context's TLS sessions, and
seeing which client certificates the handshake refused. Each calls OpenSSL
through the very library ``_ssl`` uses, on the context's ``SSL_CTX``
(:func:`_native` finds it and checks that it is that context). Where that is
not possible (not CPython, a library without the symbol) the call reports
False and changes nothing; callers say what is lost.
"""

from __future__ import annotations

import _ssl
import ctypes
import secrets
import ssl
import sys
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Final

from interlock.logs import get_logger

__all__ = [
    "HANDSHAKE_REFUSALS",
    "INTERMEDIATE_GROUPS",
    "forget_sessions",
    "report_refused_certificates",
    "restrict_groups",
]

# Mozilla "intermediate": key exchange groups X25519, prime256v1, secp384r1 (OpenSSL
# would also offer X448, secp521r1 and FFDHE groups).
INTERMEDIATE_GROUPS: Final = b"X25519:prime256v1:secp384r1"
# OpenSSL's X509_V_ERR_* codes for a client certificate of a CA the listener
# trusts that is not usable now; other failures (an unknown CA, a wrong EKU)
# come from strangers and are not evidence about a client.
HANDSHAKE_REFUSALS: Final = {9: "not-yet-valid", 10: "expired", 23: "revoked"}

_SSL_CTRL_SET_GROUPS_LIST: Final = 92
_SSL_CTRL_SET_TLSEXT_TICKET_KEYS: Final = 59
_TICKET_KEYS_LENGTH: Final = 80  # key name, HMAC key, AES key
_LONGER_THAN_ANY_SESSION: Final = 10**7  # seconds; OpenSSL's default session timeout is 7,200
_MAX_CERTIFICATE: Final = 64 * 1024
_CTRL_ARGUMENTS: Final = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_char_p]
_VERIFY_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
# A context's verify callback must live as long as the context.
_CALLBACKS: weakref.WeakKeyDictionary[ssl.SSLContext, object] = weakref.WeakKeyDictionary()
_log = get_logger("interlock.gateway.tls")


def restrict_groups(context: ssl.SSLContext, groups: bytes = INTERMEDIATE_GROUPS) -> bool:
    """Limit the key-exchange groups (``SSL_CTX_set1_groups_list``); True when done."""
    setter = getattr(context, "set_groups", None)
    if setter is not None:  # Python 3.13+
        setter(groups.decode())
        return True
    native = _native(context)
    if native is None:
        return False
    library, pointer = native
    try:
        control = _function(library, "SSL_CTX_ctrl", ctypes.c_long, _CTRL_ARGUMENTS)
    except AttributeError:
        return False
    return bool(control(pointer, _SSL_CTRL_SET_GROUPS_LIST, 0, groups) == 1)


def forget_sessions(context: ssl.SSLContext) -> bool:
    """End every TLS session ``context`` could resume; True when done.

    A resumed session skips certificate verification: its client certificate
    was checked at the full handshake, against the revocation list of that
    moment. So when the list changes, new ticket keys make every TLS 1.3 and
    TLS 1.2 ticket unreadable, and the session cache (TLS 1.2 session ids) is
    emptied: each client's next connection is a full handshake, which checks
    the current list. Call it on the thread that runs the listener's handshakes
    (the event loop): OpenSSL swaps ticket keys without a lock.
    """
    native = _native(context)
    if native is None:
        return False
    library, pointer = native
    try:
        control = _function(library, "SSL_CTX_ctrl", ctypes.c_long, _CTRL_ARGUMENTS)
        flush = _function(library, "SSL_CTX_flush_sessions", None, [ctypes.c_void_p, ctypes.c_long])
    except AttributeError:
        return False
    keys = secrets.token_bytes(_TICKET_KEYS_LENGTH)
    if control(pointer, _SSL_CTRL_SET_TLSEXT_TICKET_KEYS, len(keys), keys) != 1:
        return False
    # OpenSSL dates sessions by the system clock: every cached one counts as expired
    # at a moment beyond any session's timeout.
    flush(pointer, int(time.time()) + _LONGER_THAN_ANY_SESSION)
    return True


def report_refused_certificates(
    context: ssl.SSLContext, refused: Callable[[bytes, str], None]
) -> bool:
    """Call ``refused(der, reason)`` for each client certificate a handshake refuses; True if set.

    Only for the reasons of :data:`HANDSHAKE_REFUSALS` (revoked, expired, not
    yet valid). The handshake's verdict never changes: the callback returns
    OpenSSL's own, and a failure of ``refused`` is logged, never raised into
    OpenSSL. ``refused`` runs during the handshake, on the listener's thread:
    it must be quick and never block.
    """
    native = _native(context)
    if native is None:
        return False
    library, pointer = native
    try:
        functions = _verify_functions(library)
    except AttributeError:
        return False
    error, depth, current, encode, mode, set_verify = functions

    def verify(ok: int, store: int | None) -> int:
        if ok or not store:
            return ok
        try:
            reason = HANDSHAKE_REFUSALS.get(error(store))
            certificate = current(store) if reason is not None and depth(store) == 0 else None
            if reason is not None and certificate:
                size = encode(certificate, None)
                if 0 < size <= _MAX_CERTIFICATE:
                    der = ctypes.create_string_buffer(size)
                    cursor = ctypes.c_void_p(ctypes.addressof(der))  # i2d_X509 moves it on
                    if encode(certificate, ctypes.byref(cursor)) == size:
                        refused(der.raw, reason)
        except Exception as exc:  # noqa: BLE001  (never into OpenSSL; the verdict stands)
            _log.error("refused client certificate not reported", error=type(exc).__name__)
        return ok

    callback = _VERIFY_CALLBACK(verify)
    _CALLBACKS[context] = callback
    set_verify(pointer, mode(pointer), callback)
    return True


def _verify_functions(library: ctypes.CDLL) -> tuple[Any, ...]:
    """What a verify callback reads of a refused certificate, and how to install one."""
    store = [ctypes.c_void_p]
    return (
        _function(library, "X509_STORE_CTX_get_error", ctypes.c_int, store),
        _function(library, "X509_STORE_CTX_get_error_depth", ctypes.c_int, store),
        _function(library, "X509_STORE_CTX_get_current_cert", ctypes.c_void_p, store),
        _function(
            library, "i2d_X509", ctypes.c_int, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
        ),
        _function(library, "SSL_CTX_get_verify_mode", ctypes.c_int, store),
        _function(
            library, "SSL_CTX_set_verify", None, [ctypes.c_void_p, ctypes.c_int, _VERIFY_CALLBACK]
        ),
    )


def _function(library: ctypes.CDLL, name: str, result: object, arguments: Sequence[object]) -> Any:
    """``library.name`` with its C signature set (ctypes guesses ``int`` otherwise).

    Raises :class:`AttributeError` when the library lacks it.
    """
    function = getattr(library, name)
    function.restype = result
    function.argtypes = arguments
    return function


def _native(context: ssl.SSLContext) -> tuple[ctypes.CDLL, int] | None:
    """The OpenSSL library ``_ssl`` uses and ``context``'s ``SSL_CTX``, or None.

    It first checks that the pointer it found is that context (its options
    must read back as ``context.options``) and otherwise gives up.
    """
    if sys.implementation.name != "cpython":
        return None
    try:
        library = ctypes.CDLL(_ssl.__file__)
        get_options = library.SSL_CTX_get_options
    except (OSError, AttributeError):
        return None
    get_options.restype = ctypes.c_uint64
    get_options.argtypes = [ctypes.c_void_p]
    # PySSLContext starts with PyObject_HEAD, then the SSL_CTX pointer.
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not pointer or get_options(pointer) != int(context.options):
        return None
    return library, pointer
