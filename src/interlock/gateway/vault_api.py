"""The vault over HTTPS for clients: ``/v1/secrets``.

Clients authenticate with an access token from the gateway's token endpoint
(DPoP- and certificate-bound tokens included) or a client certificate;
API keys are refused here, since a key stored next to the secrets it unlocks
protects nothing. The vault's access policy then decides, per path and
capability, default deny.

======================================  ==========================================
``GET /v1/secrets/{name}``              the current value (``?version=N`` or
                                        ``?stage=previous`` for another; a
                                        pending version is not served)
``GET /v1/secrets?prefix=erp``          names the client may list, no values
``PUT /v1/secrets/{name}``              ``{"value": base64, "cas": n}``: a new version
======================================  ==========================================

Values travel base64-encoded (they are bytes); answers carry
``Cache-Control: no-store`` and a ``lease_seconds`` saying how long the
client may keep the value before asking again. Every read and write is on
the audit trail as ``client:<name>``; when it cannot be recorded the value
is not released (503).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import re
from typing import Any, Final

from aiohttp import web

from interlock.actors import Client
from interlock.audit.errors import AuditUnavailableError
from interlock.config.manifest import JsonLimits
from interlock.errors import InvalidRequestError, NotFoundError, Refusal
from interlock.gateway.body import read_limited
from interlock.gateway.context import remember_principal
from interlock.gateway.endpoint_scopes import require_gateway_scope
from interlock.gateway.stages.authenticate import Authentication
from interlock.identity.grants import Principal
from interlock.secrets.errors import AccessDeniedError, VersionConflictError
from interlock.secrets.vault import MAX_SECRET_BYTES, SecretInfo, Vault, VersionInfo
from interlock.validation.json_body import parse_json

__all__ = ["PREFIX", "VaultApi"]

PREFIX: Final = "/v1/secrets"
_MAX_BODY: Final = MAX_SECRET_BYTES * 2  # base64 and JSON around the largest value
# {"value": "<base64>", "cas": n}: one flat object whose longest string is the value's
# base64 (an unknown member gets its own message below). Read by the gateway's strict
# parser, as a route's body is: a duplicate key, a byte order mark, NaN or nesting past
# the stack are refused (json.loads took the last duplicate and ended deep nesting in
# an unhandled RecursionError).
_BODY_LIMITS: Final = JsonLimits(max_depth=1, max_string_length=_MAX_BODY, max_members=16)
_NO_STORE: Final = {"Cache-Control": "no-store"}
_METHODS: Final = ("oauth2", "mtls")
# ASCII digits only: str.isdigit() also takes other scripts' digits and superscripts
# (int("²") raises), so a version is matched, never asked whether it "is a digit".
_VERSION: Final = re.compile(r"[1-9][0-9]{0,8}")


class VaultApi:
    """Answers ``/v1/secrets`` requests for a gateway."""

    def __init__(self, vault: Vault, lease_seconds: int = 60) -> None:
        """Serve ``vault``; clients may keep a value ``lease_seconds`` before asking again."""
        self.vault = vault
        self.lease_seconds = lease_seconds

    async def handle(self, request: web.BaseRequest, authenticate: Authentication) -> web.Response:
        """Authenticate, authorise (in the vault) and answer one request."""
        name = request.path.removeprefix(PREFIX).removeprefix("/")
        if request.method not in {"GET", "PUT"} or (request.method == "PUT" and not name):
            allowed = "GET, PUT" if name else "GET"
            raise Refusal("method-not-allowed", f"use {allowed}", headers={"Allow": allowed})
        principal = await authenticate.principal_of(request)
        remember_principal(request, principal)  # the request's audit entry names the client
        _authorise(principal, "vault.write" if request.method == "PUT" else "vault.read")
        try:
            if request.method == "PUT":
                return await self._write(request, principal, name)
            if not name:
                return await self._list(request, principal)
            return await self._read(request, principal, name)
        except AccessDeniedError:
            raise Refusal("access-denied", "the vault's policy does not allow this") from None
        except NotFoundError as exc:
            raise Refusal("not-found", exc.message) from None
        except VersionConflictError as exc:
            raise Refusal("version-conflict", exc.message) from None
        except InvalidRequestError as exc:
            raise Refusal("invalid-request", exc.message) from None
        except AuditUnavailableError:
            raise Refusal(
                "audit-unavailable",
                # A write is stored before its entry is written: say so, honestly.
                "the vault stored the new version but the audit trail could not record it; "
                "read the secret before writing again"
                if request.method == "PUT"
                else "the vault cannot record this request, so it is not answered; try again later",
            ) from None

    async def _read(
        self, request: web.BaseRequest, principal: Principal, name: str
    ) -> web.Response:
        version = _version(_single(request, "version"))
        stage = _single(request, "stage")
        # docs/vault.md: a pending version (a rotation's untested value) is not served.
        if stage not in {None, "current", "previous"}:
            raise InvalidRequestError("stage is current or previous")
        if version is not None and stage is not None:
            raise InvalidRequestError("ask for a version or a stage, not both")
        secret, info = await asyncio.to_thread(
            self.vault.read,
            name,
            actor=Client(principal.client),
            version=version,
            stage=stage,  # type: ignore[arg-type]  # checked above
        )
        body = _version_json(info) | {
            "value": base64.b64encode(secret.reveal()).decode("ascii"),
            "lease_seconds": self.lease_seconds,
        }
        return web.json_response(body, headers=_NO_STORE)

    async def _list(self, request: web.BaseRequest, principal: Principal) -> web.Response:
        prefix = _single(request, "prefix") or ""
        found = await asyncio.to_thread(
            functools.partial(self.vault.secrets, prefix, actor=Client(principal.client))
        )
        return web.json_response({"secrets": [_info_json(i) for i in found]}, headers=_NO_STORE)

    async def _write(
        self, request: web.BaseRequest, principal: Principal, name: str
    ) -> web.Response:
        if request.content_type != "application/json":
            raise Refusal("unsupported-media-type", "send application/json")
        document = parse_json(await read_limited(request, _MAX_BODY), _BODY_LIMITS)
        if not isinstance(document, dict) or set(document) - {"value", "cas"}:
            raise InvalidRequestError('send {"value": "<base64>", "cas": <version, optional>}')
        value, cas = document.get("value"), document.get("cas")
        if not isinstance(value, str):
            raise InvalidRequestError("value must be a base64 string")
        if cas is not None and (not isinstance(cas, int) or isinstance(cas, bool) or cas < 0):
            raise InvalidRequestError("cas must be a version number (0: only if new)")
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequestError("value must be a base64 string") from None
        info = await asyncio.to_thread(
            self.vault.write,
            name,
            decoded,
            actor=Client(principal.client),
            cas=cas,
        )
        status = 201 if info.version == 1 else 200
        return web.json_response(_version_json(info), status=status, headers=_NO_STORE)


def _authorise(principal: Principal, scope: str) -> None:
    """A certificate, or a token this gateway issued for itself, holding ``scope``.

    Checked before the vault's access policy, which then decides per secret. A
    token issued for some systems (RFC 8707 audience) is a token for another
    resource (RFC 9068 §4): ``invalid_token``, as on a route.
    """
    if not principal.satisfies(_METHODS):
        raise Refusal(
            "credential-not-accepted",
            "the vault takes an access token or a client certificate, not an API key",
        )
    require_gateway_scope(principal, scope, api="vault", what="the vault requires")


def _single(request: web.BaseRequest, name: str) -> str | None:
    """The query parameter ``name``, if given; given twice it is refused, not guessed at.

    Which of two values counts is a choice parsers make differently (a proxy or a
    log may read the last one where this reads the first): answer neither.
    """
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise InvalidRequestError(f"give {name} once")
    return values[0] if values else None


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    if not _VERSION.fullmatch(text):
        raise InvalidRequestError("version must be a positive integer")
    return int(text)


def _version_json(info: VersionInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "version": info.version,
        "stage": info.stage,
        "created_at": info.created_at.isoformat(),
        "valid_until": info.valid_until.isoformat() if info.valid_until else None,
    }


def _info_json(info: SecretInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "current_version": info.current_version,
        "kind": info.kind,
        "updated_at": info.updated_at.isoformat(),
    }
