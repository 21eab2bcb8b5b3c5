"""One exception hierarchy for all of Interlock.

Every error Interlock raises on purpose derives from :class:`InterlockError` and
carries a stable, machine-readable ``code`` (house rule 4). Faces map errors to
their wire form: the CLI prints ``error[code]: message`` on one line, the HTTP
faces render an RFC 9457 problem whose ``type`` ends in the code.

Messages must never contain secret material: they may reach a terminal, a log
or (sanitised) an HTTP body.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

__all__ = [
    "AlreadyInitialisedError",
    "AuthenticationError",
    "AuthorisationError",
    "ConfigError",
    "CryptoError",
    "DPoPProofError",
    "DecryptionError",
    "InterlockError",
    "InvalidRequestError",
    "InvalidTokenError",
    "KeyFileError",
    "KeyringError",
    "ManifestError",
    "MissingExtraError",
    "NotFoundError",
    "NotInitialisedError",
    "Refusal",
    "StoreError",
    "StoreMismatchError",
    "UnknownKeyVersionError",
    "did_you_mean",
]


class InterlockError(Exception):
    """Root of every deliberate Interlock error; ``code`` is stable across releases."""

    code: str = "interlock_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# -- configuration -----------------------------------------------------------


class ConfigError(InterlockError):
    """Settings or a configuration file could not be used."""

    code = "config_invalid"


class ManifestError(ConfigError):
    """The manifest is invalid; ``diagnostics`` holds every located error at once."""

    code = "manifest_invalid"

    def __init__(self, message: str, diagnostics: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics


class MissingExtraError(ConfigError):
    """The configuration asks for a feature whose optional dependencies are not installed."""

    code = "missing_extra"

    def __init__(self, feature: str, extra: str, missing: ModuleNotFoundError) -> None:
        module = (missing.name or "a module").partition(".")[0]
        super().__init__(
            f"{feature} needs the {extra} extra ({module} is not installed): "
            f"pip install 'interlock[{extra}]'"
        )
        self.extra = extra


# -- data directory and store ------------------------------------------------


class NotInitialisedError(InterlockError):
    """The data directory has not been created by ``interlock init``."""

    code = "not_initialised"


class AlreadyInitialisedError(InterlockError):
    """``init`` refuses to overwrite an existing deployment or key file."""

    code = "already_initialised"


class StoreError(InterlockError):
    """The database could not be reached, migrated or used."""

    code = "store_error"


class StoreMismatchError(StoreError):
    """The database was created with a different keyring than the one loaded."""

    code = "store_keyring_mismatch"


# -- cryptography ------------------------------------------------------------


class CryptoError(InterlockError):
    """Base of cryptographic failures. Details of *why* a check failed stay opaque."""

    code = "crypto_error"


class DecryptionError(CryptoError):
    """A sealed blob was altered, truncated, or opened with the wrong associated data.

    Deliberately one error for all of these (as Fernet's ``InvalidToken`` and
    Tink's ``'Decryption failed.'``): a caller must not learn which check failed.
    """

    code = "decryption_failed"


class UnknownKeyVersionError(DecryptionError):
    """The blob names a key-encryption key (id or version) this keyring does not hold.

    The header is public, so naming the version leaks nothing; it tells an
    operator that a keyring file is missing a rotation.
    """

    code = "unknown_key_version"


class KeyringError(CryptoError):
    """The keyring could not be created, loaded or rotated."""

    code = "keyring_error"


class KeyFileError(KeyringError):
    """A key file is missing, malformed, or readable by group or others."""

    code = "key_file_invalid"


# -- identity and requests ---------------------------------------------------


class NotFoundError(InterlockError):
    """A named object (client, key, secret) does not exist."""

    code = "not_found"

    @classmethod
    def unknown(
        cls, kind: str, name: str, known: Iterable[str], where: str = "in the manifest"
    ) -> NotFoundError:
        """``no client 'ordr-sync' in the manifest; did you mean 'order-sync'?``

        ``known`` is every name the caller could have meant (manifest entries,
        stored names); the closest ones are suggested, never the whole list.
        """
        place = f" {where}" if where else ""
        return cls(f"no {kind} {name!r}{place}{did_you_mean(name, known)}")


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``; did you mean 'a'?`` / ``; did you mean 'a' or 'b'?`` — or ``""``.

    Suggested, at most three: names that differ only in case, names that start
    with ``name``, then the closest by :func:`difflib.SequenceMatcher` ratio
    (>= 0.7, and within 0.1 of the best, so one clear match comes alone).
    """
    candidates = sorted(set(known) - {name})
    folded = name.casefold()
    first = [c for c in candidates if c.casefold() == folded]
    first += [c for c in candidates if c.casefold().startswith(folded) and c not in first]
    scored = sorted(
        ((difflib.SequenceMatcher(None, folded, c.casefold()).ratio(), c) for c in candidates),
        key=lambda pair: (-pair[0], pair[1]),
    )
    best = scored[0][0] if scored else 0.0
    close = first + [c for r, c in scored if r >= max(0.7, best - 0.1) and c not in first]
    if not close:
        return ""
    quoted = [repr(c) for c in close[:3]]
    alternatives = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f" or {quoted[-1]}"
    return f"; did you mean {alternatives}?"


class InvalidRequestError(InterlockError):
    """A request or command argument is malformed or not allowed."""

    code = "invalid_request"


class AuthenticationError(InterlockError):
    """The caller's credential is missing, malformed, unknown, expired or revoked.

    ``message`` is safe to show the caller and deliberately vague; ``reason``
    says exactly what failed and goes to the log only.
    """

    code = "invalid_credentials"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class AuthorisationError(InterlockError):
    """The caller is known but lacks the scope a route requires."""

    code = "insufficient_scope"

    def __init__(self, message: str, missing_scope: str) -> None:
        super().__init__(message)
        self.missing_scope = missing_scope


class InvalidTokenError(CryptoError):
    """A signed token failed verification. ``message`` is opaque; ``reason`` is for the log."""

    code = "invalid_token"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class DPoPProofError(InvalidTokenError):
    """A DPoP proof (RFC 9449) is missing, invalid, or needs a fresh server nonce.

    ``error`` is the RFC 9449 §7.1 / §12.2 code: ``invalid_dpop_proof`` or
    ``use_dpop_nonce``.
    """

    code = "invalid_dpop_proof"

    def __init__(self, reason: str, error: str = "invalid_dpop_proof") -> None:
        super().__init__("the DPoP proof is invalid", reason)
        self.error = error


# -- refusals at a boundary --------------------------------------------------


class Refusal(InterlockError):  # noqa: N818  (a refusal of a request, not a fault)
    """A request refused at a boundary: the caller's doing, or a dependency that is down.

    ``code`` names the refusal and is stable across releases (the last segment
    of the RFC 9457 problem type, or the RFC 6749 §5.2 ``error`` at the token
    endpoint); the faces map it to a status and a title through one table
    (:data:`interlock.gateway.problems.REFUSALS`). ``detail`` is safe to show
    the caller; ``log_reason`` says more, for the log only; ``headers`` and
    ``extra`` (RFC 9457 extension members) travel with the answer.

    Raise a new refusal every time. A shared instance collects the traceback of
    every raise, and with it every refused request's frames.
    """

    code = "refused"

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, object] | None = None,
        log_reason: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.headers: Mapping[str, str] = dict(headers or {})
        self.extra: Mapping[str, object] = dict(extra or {})
        self.log_reason = log_reason or detail
