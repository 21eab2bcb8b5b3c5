"""The webhook connector: one signed HTTPS ``POST`` per attempt, JSON both ways.

What Interlock sends to ``systems.X.privacy.webhook.url`` (docs/privacy.md,
"Data-subject requests")::

    POST <url>
    Content-Type: application/json
    Idempotency-Key: <request id>:<system>      (the same for every attempt)
    Authorization: Bearer <secret>              (when ``credentials`` is set)
    Content-Digest, Signature-Input, Signature  (RFC 9421 / RFC 9530)

    {"request_id": "dsr_...", "action": "erase",
     "subject": {"kind": "email", "value": "ada@example.com"},
     "corrections": {...}}                       (rectify only)

The signature is Interlock's (its current OAuth signing key, ``keyid`` = the
``kid`` in ``/.well-known/jwks.json``) and covers ``@method``,
``@target-uri``, ``content-type`` and ``content-digest`` with a ``created``
time, so the receiver can tell the request came from Interlock and was not
changed. The answer is ``2xx`` with ``{"status": "done"|"not_found",
"records": n, "data": ...}``.

Failures say whether a retry can help: a timeout, a connection error, a
``5xx``, ``408`` or ``429`` may pass; any other status, an answer that is not
JSON of that shape (strict RFC 8259: no ``NaN``, ``Infinity`` or lone surrogate),
or one larger than :data:`MAX_ANSWER` will not. No message
carries the identifier or the system's answer text.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from typing import Any, Final

import httpx

from interlock.config.manifest import WebhookConnector as WebhookSettings
from interlock.errors import InterlockError
from interlock.outbound import ResponseTooLargeError, Timeouts, outbound_client, read_capped
from interlock.privacy.connectors.base import (
    Action,
    ConnectorAnswer,
    ConnectorEnvironment,
    ConnectorError,
    canonical_data,
)
from interlock.sdk.rfc9421 import SignedRequests

__all__ = ["MAX_ANSWER", "WebhookConnector"]

#: The largest answer read (decoded bytes); the rest is refused unread.
MAX_ANSWER: Final = 10 * 1024 * 1024
#: Statuses after which the same request may succeed later (RFC 9110 §15.5.9, RFC 6585 §4).
_RETRYABLE_4XX: Final = frozenset({408, 425, 429})
_MAX_RECORDS: Final = 2**31 - 1


class WebhookConnector:
    """Asks ``system`` through its webhook; one instance per system, reusable."""

    def __init__(
        self, system: str, settings: WebhookSettings, ca: str, environment: ConnectorEnvironment
    ) -> None:
        """``settings``: the system's ``privacy.webhook``; ``ca``: the system's trust anchor."""
        self.system = system
        self._settings = settings
        self._ca = ca
        self._environment = environment

    def ask(
        self,
        action: Action,
        request_id: str,
        subject_kind: str,
        identifier: str,
        corrections: Mapping[str, str] | None,
    ) -> ConnectorAnswer:
        """POST the request and read the answer (see the module's docstring)."""
        document: dict[str, Any] = {
            "request_id": request_id,
            "action": action,
            "subject": {"kind": subject_kind, "value": identifier},
        }
        if action == "rectify":
            document["corrections"] = dict(corrections or {})
        body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            # The receiver treats a repeat (a retry, a resumed crash) as the same request.
            "Idempotency-Key": f"{request_id}:{self.system}",
        }
        try:
            headers.update(self._authorization())
            signer = self._environment.signer()
            context = self._environment.trust(self._ca)
        except InterlockError as exc:
            # The vault or the keys are unavailable: the deployment's problem, may pass.
            raise ConnectorError(
                f"the webhook could not be prepared ({exc.code})", retryable=True
            ) from None
        except OSError as exc:
            # The system's ca file is missing or not PEM (ssl.SSLError is an OSError):
            # the operator can put it back. The message would name the path: only the type.
            raise ConnectorError(
                f"the webhook could not be prepared: the system's ca could not be loaded "
                f"({type(exc).__name__})",
                retryable=True,
            ) from None
        except ValueError:
            # RequestSigner signs with Ed25519 or P-256 keys only (RFC 9421 §3.3).
            raise ConnectorError(
                "Interlock's signing key cannot sign webhook requests: use ES256 or Ed25519 "
                "OAuth signing keys",
                retryable=False,
            ) from None
        raw = self._post(context, signer, body, headers)
        return _answer(raw, action)

    def _authorization(self) -> dict[str, str]:
        reference = self._settings.credentials
        if reference is None:
            return {}
        secret = self._environment.secrets.resolve(reference)
        return {"Authorization": "Bearer " + secret.reveal().decode()}

    def _post(
        self, context: ssl.SSLContext, signer: Any, body: bytes, headers: dict[str, str]
    ) -> bytes:
        timeouts = Timeouts.every(self._settings.timeout.total_seconds())
        try:
            with (
                outbound_client(
                    trust=context, timeouts=timeouts, auth=SignedRequests(signer)
                ) as client,
                client.stream(
                    "POST", self._settings.url, content=body, headers=headers
                ) as response,
            ):
                status = response.status_code
                if not 200 <= status < 300:
                    raise ConnectorError(
                        f"the webhook answered HTTP {status}",
                        retryable=status >= 500 or status in _RETRYABLE_4XX,
                    )
                return read_capped(response, MAX_ANSWER)
        except ResponseTooLargeError:
            raise ConnectorError(
                f"the webhook's answer is larger than {MAX_ANSWER} bytes", retryable=False
            ) from None
        except httpx.TimeoutException:
            raise ConnectorError("the webhook did not answer in time", retryable=True) from None
        except httpx.TransportError as exc:
            raise ConnectorError(_transport(exc), retryable=True) from None
        except InterlockError as exc:
            if isinstance(exc, ConnectorError):
                raise
            raise ConnectorError(
                f"the webhook request was refused ({exc.code})", retryable=False
            ) from None


def _no_constant(name: str) -> Any:
    # RFC 8259 §6: NaN and Infinity are not JSON (the stdlib parser accepts them).
    raise ValueError(f"{name} is not JSON")


def _transport(exc: httpx.TransportError) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return "the webhook's TLS certificate did not verify against the system's ca"
        if isinstance(cause, ssl.SSLError):
            return "the TLS handshake with the webhook failed"
        cause = cause.__cause__ or cause.__context__
    return f"the webhook could not be reached ({type(exc).__name__})"


def _answer(raw: bytes, action: Action) -> ConnectorAnswer:
    try:
        document = json.loads(raw, parse_constant=_no_constant)
        # RFC 8259 §8.2: a lone surrogate ("\ud800") is no Unicode text, and a number
        # past a double (1e400) became inf: neither has the canonical JSON the answer's
        # digest and sealed copy are made of (canonical_data refuses both).
        canonical_data(document)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeError are ValueErrors
        raise ConnectorError("the webhook's answer is not JSON", retryable=False) from None
    if not isinstance(document, dict):
        raise ConnectorError("the webhook's answer is not a JSON object", retryable=False)
    status = document.get("status")
    if status not in {"done", "not_found"}:
        raise ConnectorError(
            'the webhook\'s answer has no "status" of "done" or "not_found"', retryable=False
        )
    records = document.get("records")
    if (
        not isinstance(records, int)
        or isinstance(records, bool)
        or not 0 <= records <= _MAX_RECORDS
    ):
        raise ConnectorError(
            'the webhook\'s answer has no "records" count (a non-negative integer)',
            retryable=False,
        )
    data = document.get("data") if action in {"access", "export"} else None
    return ConnectorAnswer("done" if status == "done" else "not_found", records, data)
