"""The PKCS#11 backend of the keyring: KEK versions that never leave an HSM token.

Each KEK version is an AES-256 secret key generated inside the token by
``C_GenerateKey`` with ``CKA_TOKEN``, ``CKA_PRIVATE`` and ``CKA_SENSITIVE``
true and ``CKA_EXTRACTABLE``, ``CKA_MODIFIABLE`` and every capability but
encrypt/decrypt false, labelled ``interlock-kek/<keyring id>/v<version>``
(``CKA_ID`` is the raw keyring id followed by the uint32 version). Versions are
discovered from the token by their labels, so another process's rotation is
seen without any file; a key found under our label that could be exported, or
that was not generated in the token and kept unexportable since (``CKA_LOCAL``,
``CKA_ALWAYS_SENSITIVE``, ``CKA_NEVER_EXTRACTABLE``), is refused: a planted key
whose value its planter knows would let the planter read data keys. Interlock
never imports a key into the token (``keyring import-version`` is for file
keyrings only), so every key of its own passes.

Data keys are wrapped with ``CKM_AES_GCM`` (PKCS#11 v2.40 §2.12.3, NIST SP
800-38D): a random 96-bit nonce from the host, the blob header as additional
authenticated data and a 128-bit tag, giving ``nonce 12 || ciphertext 32 ||
tag 16`` = 60 bytes, the same size and layout as the file backend. GCM rather
than ``CKM_AES_KEY_WRAP_KWP`` because the header must be bound to the wrapped
key (KWP takes no associated data); SoftHSM2 2.6 and current HSMs offer it.

Sessions: one logged-in read-write session per handle. python-pkcs11 serialises
operations on a session with its own lock, so the gateway's threads can share
it; a failure that means the session is gone (closed, token removed, device
error, logged out) reopens it once, logging in again with the PIN re-read from
its file, and a second failure raises :class:`KeyringError`. Every failure to
reach the token (module, token label, PIN) fails closed with a one-line
:class:`KeyringError` naming what to fix, never the PIN.

Rotation adds ``max(version on the token) + 1``. Rotations of one deployment
are serialised by a lock file beside the keyring reference when one is
configured; two hosts rotating the same keyring at the same instant could
create two keys under one label, which this backend detects and refuses to
wrap with (unwrapping tries both), so run rotations from one place.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol, TypeVar

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass, SecretKey, Session
from pkcs11 import exceptions as p11
from pkcs11.types import DecryptMixin, EncryptMixin

from interlock.crypto import aead, keyfile
from interlock.crypto.kek import Unexportable
from interlock.errors import CryptoError, DecryptionError, KeyFileError, KeyringError

__all__ = ["LABEL_PREFIX", "Pkcs11Config", "Pkcs11Kek", "kek_label"]

#: Every KEK this backend makes is labelled LABEL_PREFIX + "<keyring id>/v<version>".
LABEL_PREFIX: Final = "interlock-kek/"
_LABEL: Final = re.compile(r"interlock-kek/([0-9a-f]{32})/v([1-9][0-9]{0,9})")
_WRAPPED_SIZE: Final = aead.NONCE_SIZE + aead.KEY_SIZE + aead.TAG_SIZE
_MAX_PIN_FILE: Final = 256
# Failures that mean the session (not the request) is broken: reopen once.
_SESSION_LOST: Final = (
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.DeviceRemoved,
    p11.DeviceError,
    p11.TokenNotPresent,
    p11.UserNotLoggedIn,
    p11.KeyHandleInvalid,
    p11.ObjectHandleInvalid,
)
# The attributes every KEK is generated with (and, where a token reports them, checked on).
_TEMPLATE: Final[Mapping[Attribute, bool]] = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.MODIFIABLE: False,
    Attribute.ENCRYPT: True,
    Attribute.DECRYPT: True,
    Attribute.WRAP: False,
    Attribute.UNWRAP: False,
    Attribute.SIGN: False,
    Attribute.VERIFY: False,
    Attribute.DERIVE: False,
}
_T = TypeVar("_T")


class _GcmKey(Protocol):
    """The part of a python-pkcs11 AES key object this module uses (its mixins, typed)."""

    @property
    def label(self) -> str: ...

    def __getitem__(self, key: Attribute) -> Any: ...

    def encrypt(
        self, data: str | bytes | Iterator[bytes], buffer_size: int = 8192, **kwargs: Any
    ) -> bytes | Iterator[bytes]: ...

    def decrypt(
        self, data: bytes | Iterator[bytes], buffer_size: int = 8192, **kwargs: Any
    ) -> bytes | Iterator[bytes]: ...


@dataclass(frozen=True)
class Pkcs11Config:
    """Where the token is: module, token label, the PIN's file, and a rotation lock."""

    module: Path
    token_label: str
    pin_file: Path
    #: A file whose sibling lock serialises rotations (the keyring reference file).
    lock_file: Path | None = None


@dataclass(frozen=True)
class _Connection:
    """One session and the keys found through it; replaced whole on reconnect."""

    session: Session
    keys: Mapping[int, tuple[_GcmKey, ...]]

    @property
    def current(self) -> int:
        return max(self.keys)


def kek_label(keyring_id: str, version: int) -> str:
    """The token label of KEK ``version`` of ``keyring_id``."""
    return f"{LABEL_PREFIX}{keyring_id}/v{version}"


class Pkcs11Kek(Unexportable):
    """Versioned AES-256 KEKs inside a PKCS#11 token; implements ``KekBackend``."""

    __slots__ = ("_config", "_connection", "_keyring_id", "_lock")

    kind: Final[Literal["pkcs11"]] = "pkcs11"

    def __init__(self, config: Pkcs11Config, keyring_id: str) -> None:
        self._config = config
        self._keyring_id = keyring_id
        self._lock = threading.RLock()
        self._connection: _Connection | None = None

    @classmethod
    def create(cls, config: Pkcs11Config) -> Pkcs11Kek:
        """A new keyring id with KEK version 1 generated in the token."""
        kek = cls(config, secrets.token_hex(16))
        session = _open_session(config)
        try:
            _generate(session, kek.keyring_id, 1)
        finally:
            _close_quietly(session)
        kek._connect()
        return kek

    @classmethod
    def open(cls, config: Pkcs11Config, keyring_id: str) -> Pkcs11Kek:
        """The keyring ``keyring_id`` on the token; :class:`KeyringError` if it has no KEK."""
        kek = cls(config, keyring_id)
        kek._connect()
        return kek

    # -- KekBackend ----------------------------------------------------------

    def describe(self) -> str:
        """Module and token label (never the PIN)."""
        return f"pkcs11 token {self._config.token_label!r} (module {self._config.module})"

    @property
    def keyring_id(self) -> str:
        """32 lowercase hex digits naming this keyring."""
        return self._keyring_id

    @property
    def current_version(self) -> int:
        """The highest version on the token when it was last read."""
        return self._connected().current

    @property
    def versions(self) -> tuple[int, ...]:
        """Every version on the token when it was last read, oldest first."""
        return tuple(sorted(self._connected().keys))

    @property
    def wrapped_size(self) -> int:
        """Nonce, wrapped key and tag: 60 bytes."""
        return _WRAPPED_SIZE

    def rotate(self) -> int:
        """Generate the next KEK version in the token and make it current."""
        with self._rotation_lock(), self._lock:
            # The token, not our snapshot, says which version is next.
            version = self._refresh().current + 1
            if version > keyfile.MAX_VERSION:
                raise KeyringError("no KEK version is left to rotate to")
            self._with_session(lambda c: _generate(c.session, self._keyring_id, version))
            self._refresh()
        return version

    def has_version(self, version: int) -> bool:
        """Whether ``version`` is on the token; re-reads it once for a newer version."""
        connection = self._connected()
        if version not in connection.keys and connection.current < version <= keyfile.MAX_VERSION:
            connection = self._refresh()
        return version in connection.keys

    def wrap(self, dek: bytes, aad: bytes, version: int) -> bytes:
        """``nonce || C_Encrypt(CKM_AES_GCM, KEK_version, dek)`` authenticating ``aad``."""

        def run(connection: _Connection) -> bytes:
            candidates = connection.keys.get(version, ())
            if not candidates:
                raise KeyringError(f"KEK version {version} is not in this keyring")
            if len(candidates) > 1:
                raise KeyringError(
                    f"the token holds {len(candidates)} keys labelled "
                    f"{kek_label(self._keyring_id, version)!r} (rotations raced, or the token "
                    "was changed outside Interlock); refusing to wrap with either"
                )
            nonce = aead.new_nonce()
            body = candidates[0].encrypt(
                dek, mechanism=Mechanism.AES_GCM, mechanism_param=_gcm(nonce, aad)
            )
            if not isinstance(body, bytes):
                raise CryptoError("the token returned no wrapped key")
            return nonce + body

        try:
            wrapped = self._with_session(run)
        except p11.PKCS11Error as exc:
            raise KeyringError(f"the token refused to wrap a data key ({_name(exc)})") from None
        if len(wrapped) != _WRAPPED_SIZE:
            raise CryptoError("the token returned a wrapped key of unexpected length")
        return wrapped

    def unwrap(self, wrapped: bytes, aad: bytes, version: int) -> bytes:
        """Reverse of :meth:`wrap`; :class:`DecryptionError` on any failure."""
        if len(wrapped) != _WRAPPED_SIZE:
            raise DecryptionError(aead.DECRYPTION_FAILED)
        nonce, body = wrapped[: aead.NONCE_SIZE], wrapped[aead.NONCE_SIZE :]

        def run(connection: _Connection) -> bytes:
            for key in connection.keys.get(version, ()):
                try:
                    params = _gcm(nonce, aad)
                    dek = key.decrypt(body, mechanism=Mechanism.AES_GCM, mechanism_param=params)
                    if isinstance(dek, bytes):
                        return dek
                except _SESSION_LOST:
                    raise
                except p11.PKCS11Error:
                    # A wrong tag is CKR_ENCRYPTED_DATA_INVALID, or (SoftHSM) a general
                    # error: either way, one opaque failure for the caller.
                    continue
            raise DecryptionError(aead.DECRYPTION_FAILED)

        return self._with_session(run)

    def close(self) -> None:
        """Close the session; a later use opens a new one."""
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            _close_quietly(connection.session)

    def __repr__(self) -> str:
        return f"Pkcs11Kek(token={self._config.token_label!r}, id={self._keyring_id})"

    # -- sessions ------------------------------------------------------------

    def _connected(self) -> _Connection:
        connection = self._connection
        if connection is None:
            with self._lock:
                connection = self._connection or self._connect()
        return connection

    def _connect(self) -> _Connection:
        session = _open_session(self._config)
        try:
            keys = _discover(session, self._keyring_id)
        except BaseException:
            _close_quietly(session)
            raise
        if not keys:
            _close_quietly(session)
            raise KeyringError(
                f"token {self._config.token_label!r} holds no KEK of keyring {self._keyring_id} "
                f"(no key labelled {kek_label(self._keyring_id, 1)!r} or later); wrong token, "
                "or the keys were deleted"
            )
        self._connection = _Connection(session, keys)
        return self._connection

    def _refresh(self) -> _Connection:
        """Re-read which versions the token holds, on the same session if it still works."""

        def run(connection: _Connection) -> _Connection:
            keys = _discover(connection.session, self._keyring_id)
            if not keys:
                raise KeyringError(
                    f"token {self._config.token_label!r} no longer holds any KEK of keyring "
                    f"{self._keyring_id}"
                )
            return _Connection(connection.session, keys)

        with self._lock:
            fresh = self._with_session(run)
            self._connection = fresh
        return fresh

    def _reconnect(self) -> _Connection:
        """Under ``_lock``: a fresh session and a fresh reading of the token's keys."""
        old = self._connection
        self._connection = None
        if old is not None:
            _close_quietly(old.session)
        return self._connect()

    def _with_session(self, run: Callable[[_Connection], _T]) -> _T:
        connection = self._connected()
        try:
            return run(connection)
        except _SESSION_LOST:
            pass
        with self._lock:
            if self._connection is connection or self._connection is None:
                self._reconnect()
            connection = self._connected()
        try:
            return run(connection)
        except _SESSION_LOST as exc:
            raise KeyringError(
                f"token {self._config.token_label!r} is unavailable ({_name(exc)}); "
                "check the HSM and its connection"
            ) from None

    @contextlib.contextmanager
    def _rotation_lock(self) -> Iterator[None]:
        if self._config.lock_file is None:
            yield
            return
        with keyfile.locked(self._config.lock_file):
            yield


# -- token operations ------------------------------------------------------------


def _open_session(config: Pkcs11Config) -> Session:
    """A logged-in read-write session on the configured token, or a one-line KeyringError."""
    pin = _read_pin(config.pin_file)
    token_label = config.token_label
    try:
        library = pkcs11.lib(str(config.module))
    except p11.PKCS11Error as exc:
        raise KeyringError(
            f"PKCS#11 module {config.module} cannot be loaded ({_first_line(exc)}); "
            "check INTERLOCK_PKCS11_MODULE"
        ) from None
    try:
        token = library.get_token(token_label=token_label)
    except p11.NoSuchToken:
        raise KeyringError(
            f"no token labelled {token_label!r} in PKCS#11 module {config.module}; "
            "check INTERLOCK_PKCS11_TOKEN_LABEL"
        ) from None
    except p11.MultipleTokensReturned:
        raise KeyringError(
            f"several tokens are labelled {token_label!r}; labels must be unique"
        ) from None
    except p11.PKCS11Error as exc:
        raise KeyringError(f"cannot list the tokens of {config.module} ({_name(exc)})") from None
    try:
        return token.open(rw=True, user_pin=pin)
    except p11.UserAlreadyLoggedIn:
        # Login is per application and token: another handle in this process
        # logged in already, and a new session shares that login.
        pass
    except p11.PinIncorrect:
        raise KeyringError(
            f"token {token_label!r} refused the PIN from {config.pin_file} (wrong PIN)"
        ) from None
    except p11.PinLocked:
        raise KeyringError(f"token {token_label!r}: the user PIN is locked") from None
    except p11.PKCS11Error as exc:
        raise KeyringError(f"cannot log in to token {token_label!r} ({_name(exc)})") from None
    try:
        return token.open(rw=True)
    except p11.PKCS11Error as exc:
        raise KeyringError(
            f"cannot open a session on token {token_label!r} ({_name(exc)})"
        ) from None


def _read_pin(path: Path) -> str:
    data = keyfile.read_private_file(path, what="PIN file", limit=_MAX_PIN_FILE)
    try:
        pin = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: PIN file is not UTF-8 text") from None
    if not pin or "\n" in pin:
        raise KeyFileError(f"{path}: PIN file must hold the PIN on one line")
    return pin


def _discover(session: Session, keyring_id: str) -> dict[int, tuple[_GcmKey, ...]]:
    found: dict[int, list[_GcmKey]] = {}
    query = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES}
    for obj in session.get_objects(query):
        if not (
            isinstance(obj, SecretKey)
            and isinstance(obj, EncryptMixin)
            and isinstance(obj, DecryptMixin)
        ):
            continue
        match = _LABEL.fullmatch(str(obj.label or ""))
        if match is None or match.group(1) != keyring_id:
            continue
        version = int(match.group(2))
        if version > keyfile.MAX_VERSION:
            continue
        _check_unexportable(obj)
        found.setdefault(version, []).append(obj)
    return {version: tuple(keys) for version, keys in found.items()}


def _check_unexportable(key: _GcmKey) -> None:
    if _attribute(key, Attribute.EXTRACTABLE) or not _attribute(key, Attribute.SENSITIVE):
        raise KeyringError(
            f"the token's key {key.label!r} could be exported (CKA_EXTRACTABLE true or "
            "CKA_SENSITIVE false); Interlock uses only keys that cannot leave the token"
        )
    # Today's flags do not say whether the value was ever known outside the token: a
    # key imported with C_CreateObject or C_UnwrapKey, or generated exportable, read
    # out and then locked, passes them. Planted as our next version it would become
    # current, and its planter could unwrap every data key from then on. Every KEK
    # Interlock makes is generated in the token (CKA_LOCAL) and has been sensitive and
    # unextractable since (PKCS#11 v2.40 §4.10: ALWAYS_SENSITIVE, NEVER_EXTRACTABLE).
    born_secret = (Attribute.LOCAL, Attribute.ALWAYS_SENSITIVE, Attribute.NEVER_EXTRACTABLE)
    if not all(_attribute(key, name) is True for name in born_secret):
        raise KeyringError(
            f"the token's key {key.label!r} was not generated in the token and kept "
            "unexportable since (CKA_LOCAL, CKA_ALWAYS_SENSITIVE or CKA_NEVER_EXTRACTABLE "
            "is false), so its value may be known outside it; Interlock refuses it: remove "
            "it from the token (docs/hsm.md)"
        )


def _attribute(key: _GcmKey, name: Attribute) -> Any:
    """One attribute of ``key``; a token that will not tell fails closed, in one line."""
    try:
        return key[name]
    except _SESSION_LOST:
        raise
    except p11.PKCS11Error as exc:
        raise KeyringError(
            f"the token does not report CKA_{name.name} of its key {key.label!r} ({_name(exc)}); "
            "Interlock uses only keys it can check"
        ) from None


def _generate(session: Session, keyring_id: str, version: int) -> None:
    try:
        session.generate_key(
            KeyType.AES,
            aead.KEY_SIZE * 8,
            id=bytes.fromhex(keyring_id) + version.to_bytes(4, "big"),
            label=kek_label(keyring_id, version),
            store=True,
            capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
            template=dict(_TEMPLATE),
        )
    except _SESSION_LOST:
        raise
    except p11.PKCS11Error as exc:
        raise KeyringError(f"the token could not generate an AES-256 KEK ({_name(exc)})") from None


def _gcm(nonce: bytes, aad: bytes) -> pkcs11.GCMParams:
    return pkcs11.GCMParams(nonce, aad, aead.TAG_SIZE * 8)


def _close_quietly(session: Session) -> None:
    with contextlib.suppress(p11.PKCS11Error):
        session.close()


def _name(exc: BaseException) -> str:
    return type(exc).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else _name(exc)
