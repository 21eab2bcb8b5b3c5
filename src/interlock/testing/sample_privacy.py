"""The sample ERP's privacy webhook: ``POST /privacy/requests``, as Interlock's connector calls it.

Interlock's webhook connector sends one signed JSON request per step of a
data-subject request::

    POST /privacy/requests
    Idempotency-Key: <the same on every retry of one step>
    Signature-Input: sig1=("@method" "@target-uri" "content-type" "content-digest");...
    {"request_id": "dsr_...", "action": "access|export|erase|rectify",
     "subject": {"kind": "email", "value": "ada@example.com"}, "corrections": {...}}

The webhook verifies the RFC 9421 signature with Interlock's published keys
(its JWKS: ES256 and Ed25519 keys) through the same verifier the gateway uses
(:class:`interlock.replay.signatures.RequestSignatures`: one signature covering
``@method``, ``@target-uri`` and the body's ``Content-Digest``, created within
:data:`WINDOW`, its nonce used once) and answers 401 to anything unsigned or
badly signed. ``@target-uri`` is this server's own URL (one of its names and
its port), never whatever a ``Host`` header claims. Then it looks the person
up and answers ``{"status": "done"|"not_found", "records": n, "data": {...}}``:
access and export return the customer and the orders, erase removes them,
rectify corrects the fields of :data:`~interlock.testing.sample_data.RECTIFIABLE`.
The first answer to an ``Idempotency-Key`` is kept: a retry gets it again and
nothing is done twice; the same key with another body is refused (422).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from interlock.errors import Refusal
from interlock.testing.sample_data import RECTIFIABLE, ErpData

if TYPE_CHECKING:
    from interlock.identity.client_keys import ResolvedKey, SignatureAlgorithm
    from interlock.replay.signatures import RequestSignatures

__all__ = ["PRIVACY_PATH", "WINDOW", "JwksKeys", "JwksSource", "PrivacyWebhook"]

PRIVACY_PATH: Final = "/privacy/requests"
WINDOW: Final = timedelta(minutes=5)  # how old a signature may be
MAX_BODY: Final = 64 * 1024
SIGNER: Final = "interlock"  # the owner every JWKS key is resolved for
_IDEMPOTENCY_KEY: Final = re.compile(r"[\x21-\x7e]{1,255}")

#: Interlock's public keys: a JWKS document, a function returning one, or a file holding one.
JwksSource = Mapping[str, Any] | Callable[[], Mapping[str, Any]] | Path


class JwksKeys:
    """Resolves a signature's ``keyid`` in Interlock's JWKS (``kid``); EC P-256 and Ed25519 only."""

    def __init__(self, source: JwksSource) -> None:
        """Read keys from ``source`` (a file is re-read when it changes)."""
        self._source = source
        self._stamp: tuple[int, int] | None = None
        self._document: Mapping[str, Any] = {}

    def _keys(self) -> list[Any]:
        source = self._source
        if isinstance(source, Path):
            stat = source.stat()
            if (stat.st_mtime_ns, stat.st_size) != self._stamp:
                self._document = json.loads(source.read_text())
                self._stamp = (stat.st_mtime_ns, stat.st_size)
            document = self._document
        else:
            document = source() if callable(source) else source
        keys = document.get("keys") if isinstance(document, Mapping) else None
        return list(keys) if isinstance(keys, list) else []

    def resolve(self, keyid: str) -> ResolvedKey | None:
        """The key whose ``kid`` is ``keyid``, if it is a signing key of a usable type."""
        # Imported at the first request, as the verifier is (PrivacyWebhook._signatures).
        from interlock.crypto.jose import import_public_jwk
        from interlock.errors import InvalidTokenError
        from interlock.identity.client_keys import ResolvedKey

        for jwk in self._keys():
            if not isinstance(jwk, dict) or jwk.get("kid") != keyid:
                continue
            alg = _algorithm(jwk)
            if alg is None or jwk.get("use", "sig") != "sig":
                return None
            try:
                key = import_public_jwk(jwk)
            except InvalidTokenError:
                return None
            return ResolvedKey(keyid, SIGNER, alg, key.public_key)
        return None


def _algorithm(jwk: Mapping[str, Any]) -> SignatureAlgorithm | None:
    """RFC 9421 §3.3 algorithm of a JWK: ES256 keys sign ecdsa-p256-sha256, Ed25519 ed25519."""
    if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
        return "ecdsa-p256-sha256"
    if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
        return "ed25519"
    return None


class _Subject(BaseModel):
    # Unknown members are ignored, not refused: a newer connector may send more.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    kind: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    value: Annotated[str, StringConstraints(min_length=1, max_length=320)]


class _Step(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    request_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    action: Literal["access", "export", "erase", "rectify"]
    subject: _Subject
    corrections: dict[str, Annotated[str, StringConstraints(max_length=1000)]] | None = None


class PrivacyWebhook:
    """Answers Interlock's data-subject requests for one sample ERP's records."""

    def __init__(
        self, data: ErpData, keys: JwksSource | None, names: Iterable[str] = ("localhost",)
    ) -> None:
        """Act on ``data``; trust signatures by ``keys`` (None: refuse every request).

        ``names`` are the host names this server is reached by (its certificate's).
        """
        self.data = data
        self._keys = JwksKeys(keys) if keys is not None else None
        self._verifier: RequestSignatures | None = None
        self._names = tuple(name.lower() for name in names)
        # Idempotency-Key -> (digest of the body, status, answer)
        self._answers: dict[str, tuple[str, int, dict[str, Any]]] = {}

    async def handle(self, request: web.Request) -> web.Response:
        """Verify, then act once per Idempotency-Key."""
        try:
            status, answer = await self._answer(request)
        except _Refused as refused:
            status, answer = refused.status, {"error": refused.message}
        return web.json_response(answer, status=status)

    async def _answer(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        if request.content_type != "application/json":
            raise _Refused(415, "send application/json")
        if (request.content_length or 0) > MAX_BODY:
            raise _Refused(413, "the body is too large")
        body = await request.read()
        try:
            await asyncio.to_thread(self._verify, request, body)
        except Refusal as refusal:
            raise _Refused(401, refusal.detail) from None
        key = request.headers.get("Idempotency-Key", "")
        if not _IDEMPOTENCY_KEY.fullmatch(key):
            raise _Refused(400, "send an Idempotency-Key header")
        digest = hashlib.sha256(body).hexdigest()
        kept = self._answers.get(key)
        if kept is not None:
            if kept[0] != digest:
                raise _Refused(422, "this Idempotency-Key was used for another request")
            return kept[1], kept[2]
        try:
            step = _Step.model_validate_json(body)
        except ValidationError as exc:
            fields = sorted({".".join(map(str, e["loc"])) or "body" for e in exc.errors()})
            raise _Refused(422, "invalid request: " + ", ".join(fields)) from None
        try:
            answer = (200, self._act(step))
        except _Refused as refused:
            answer = (refused.status, {"error": refused.message})
        self._answers[key] = (digest, *answer)
        return answer

    def _signatures(self) -> RequestSignatures | None:
        """The verifier, made at the first request.

        Imported then, not at start: the store and identity modules it pulls in take
        seconds to import, and every gateway test module starts two sample ERPs.
        """
        if self._verifier is None and self._keys is not None:
            from interlock.replay.seen import MemorySeen
            from interlock.replay.signatures import RequestSignatures

            self._verifier = RequestSignatures(self._keys, MemorySeen())
        return self._verifier

    def _verify(self, request: web.Request, body: bytes) -> None:
        from interlock.replay.signatures import SignedMessage  # at the first request, as above

        signatures = self._signatures()
        if signatures is None:
            raise Refusal("unauthorized", "this server was given no keys to verify signatures")
        port = _local_port(request)
        host = request.host.lower()
        ours = {f"{name}:{port}" for name in self._names}
        if port == 443:  # RFC 9110 §4.2.2: the default port is left out
            ours.update(self._names)
        if host not in ours:
            raise Refusal("unauthorized", "the request was signed for another server")
        # RFC 9421 §2.2.2: the URL Interlock was configured with, as this server knows itself.
        message = SignedMessage(
            request.method, f"https://{host}{request.raw_path}", request.headers
        )
        signatures.verify(message, body, client=SIGNER, window=WINDOW, nonce_required=False)

    def _act(self, step: _Step) -> dict[str, Any]:
        data, subject = self.data, step.subject
        if not data.knows(subject.kind):
            raise _Refused(422, f"people are not looked up by {subject.kind} here")
        if step.action == "rectify" and (
            not step.corrections or not set(step.corrections) <= RECTIFIABLE
        ):
            allowed = ", ".join(sorted(RECTIFIABLE))
            raise _Refused(422, f"rectify needs corrections of these fields only: {allowed}")
        customer = data.find(subject.kind, subject.value)
        if customer is None:
            return {"status": "not_found", "records": 0, "data": {}}
        if step.action in {"access", "export"}:
            records = data.records_of(customer)
            return {"status": "done", "records": 1 + len(records["orders"]), "data": records}
        if step.action == "erase":
            return {"status": "done", "records": data.erase(customer), "data": {}}
        changed = data.rectify(customer, step.corrections or {})
        return {"status": "done", "records": changed, "data": data.records_of(customer)}


class _Refused(Exception):  # noqa: N818  (an answer, not a fault)
    """An error answer: its status and message (never a person's data)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _local_port(request: web.Request) -> int:
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return int(sockname[1]) if sockname else 0
