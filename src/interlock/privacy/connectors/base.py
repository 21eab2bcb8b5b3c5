"""What every data-subject request connector offers, and what it needs from its host.

A connector asks one system to act for one request: look the person up and
return their data (``access``/``export``), erase it (``erase``) or correct
it (``rectify``). It answers with a :class:`ConnectorAnswer` or raises a
:class:`ConnectorError` that says whether trying again later can help
(``retryable``). Neither ever carries the identifier or a system's own error
text: both end up in the request's status and the audit trail.

The privacy package may not import the vault (``interlock.secrets``) or the
authorization server's keys (``interlock.oauth``): the face that builds the
service hands their parts over in a :class:`ConnectorEnvironment`.
"""

from __future__ import annotations

import hashlib
import json
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from interlock.errors import InterlockError
from interlock.sdk.rfc9421 import RequestSigner
from interlock.secret import Secret

__all__ = [
    "ACTIONS",
    "Action",
    "Connector",
    "ConnectorAnswer",
    "ConnectorEnvironment",
    "ConnectorError",
    "SecretSource",
    "answer_digest",
    "canonical_data",
]

Action = Literal["access", "export", "erase", "rectify"]
ACTIONS: Final[tuple[Action, ...]] = ("access", "export", "erase", "rectify")


@dataclass(frozen=True)
class ConnectorAnswer:
    """A system's answer: ``done`` or ``not_found``, how many records, and its data (access)."""

    status: Literal["done", "not_found"]
    records: int
    data: Any = field(default=None, repr=False)  # a JSON value; personal data, never logged


class ConnectorError(InterlockError):
    """The system gave no usable answer; ``retryable``: a later attempt may succeed.

    The message names what went wrong in Interlock's words (a status code, an
    error class, a size): never the identifier, never the system's answer text.
    """

    code = "connector_failed"

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message[:500])
        self.retryable = retryable


class Connector(Protocol):
    """Asks one system to act on one data-subject request."""

    def ask(
        self,
        action: Action,
        request_id: str,
        subject_kind: str,
        identifier: str,
        corrections: Mapping[str, str] | None,
    ) -> ConnectorAnswer:
        """Act and answer; raise :class:`ConnectorError` when there is no usable answer.

        The same ``request_id`` may be asked again after a crash or a
        retryable failure: the system must treat a repeat as the same request.
        """
        ...


class SecretSource(Protocol):
    """Resolves ``secret://`` references (the vault: ``interlock.secrets.Vault``)."""

    def resolve(self, reference: str) -> Secret:
        """The current value behind ``reference``."""
        ...


@dataclass(frozen=True)
class ConnectorEnvironment:
    """What connectors need from the deployment, handed over by the face that builds them.

    ``secrets`` resolves credentials and database URLs (every read audited by
    the vault); ``trust`` turns a system's manifest ``ca`` (``system``,
    ``file:PATH``, ``pki:NAME``) into a verifying client context; ``signer``
    returns Interlock's current request signer (its OAuth signing key, an
    ``interlock.sdk.rfc9421.RequestSigner`` whose ``key_id`` is the JWKS
    ``kid``), asked afresh for every call so a key rotation applies at once.
    """

    secrets: SecretSource
    trust: Callable[[str], ssl.SSLContext]
    signer: Callable[[], RequestSigner]


def canonical_data(data: Any) -> bytes:
    """``data`` as canonical JSON: sorted keys, no whitespace, UTF-8 (what digests cover)."""
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def answer_digest(data: Any) -> str:
    """``sha256:<hex>`` of :func:`canonical_data` — what the audit trail and the receipt show."""
    return "sha256:" + hashlib.sha256(canonical_data(data)).hexdigest()
