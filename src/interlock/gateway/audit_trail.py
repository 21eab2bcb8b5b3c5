"""What the gateway puts on the audit trail: every routed decision, tokens, reloads.

* ``gateway.request`` — exactly one entry per request the gateway answers
  (but for the token endpoint's answers, below)
  (:meth:`interlock.gateway.app.Gateway.handle`; a request the HTTP parser
  refused, :meth:`GatewayAudit.unparsed`): forwarded, answered by an
  own endpoint, refused (and why) or failed, with the route template, the
  integration's source, target and data categories, the bytes that moved, the
  fields minimisation removed, and the caller's address (stored only as a
  keyed pseudonym).
* ``token.issue`` / ``token.refuse`` — a request the token endpoint answered:
  that request's one entry (instead of ``gateway.request``), with everything
  the request's entry holds plus the client, the scopes granted and the
  token's ``jti``.
* ``certificate.refuse`` — a client certificate refused as revoked, expired or
  not yet valid, at the TLS handshake or on a request (since its connection's
  handshake).
* ``manifest.reload`` — a reload taken or refused;
* ``signing_key.rotate`` and ``certificate.renew`` — what the gateway's own
  schedule does to keys and certificates.

An integration whose audit is *required* (by default: it carries personal
data) only releases a forwarded response once its entry is durable; if the
trail cannot be written in time the caller gets 503 instead (fail closed).
Everything else is recorded without waiting (best effort, failures logged).

A request in which the route's ``subjects`` locators identified persons is
personal data whatever the integration says: its entry is made durable, says
how many persons (``details.subjects``, never who: the append-only log must not
become a record of the person), and its index goes with one lineage record
per person and receiving system (:mod:`interlock.privacy.lineage`; keyed
hashes only, written off the event loop).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from pydantic import ValidationError

from interlock.audit.entry import AuditEntry, Decision, Outcome, decision_entry
from interlock.audit.errors import AuditUnavailableError
from interlock.audit.sink import AuditSink, record_decision
from interlock.config.manifest import Integration
from interlock.errors import Refusal
from interlock.gateway.client_address import client_address
from interlock.identity.grants import Principal
from interlock.logs import get_logger
from interlock.privacy.lineage import LineageIndex, RouteLineage
from interlock.privacy.subjects import Sighting

__all__ = ["GatewayAudit", "TokenAnswer", "audit_unavailable"]

_log = get_logger("interlock.gateway.audit")


def audit_unavailable() -> Refusal:
    """The refusal that replaces a response whose required audit entry was not made durable."""
    return Refusal(
        "audit-unavailable",
        "the audit trail cannot be written at the moment, so no data is released; retry shortly",
        log_reason="audit entry not durable in time (fail closed)",
    )


@dataclass(frozen=True, slots=True)
class TokenAnswer:
    """What the token endpoint answered a request: its entry becomes ``token.*``."""

    client: str | None  # the authenticated client (None: authentication failed)
    reason: str | None  # why it was refused
    scope: str | None  # the scopes granted
    jti: str | None  # the issued token's id (RFC 7519 §4.1.7), never the token


_TOKEN_ANSWER: Final = web.RequestKey("interlock.token_answer", TokenAnswer)


def _token_entry(
    answer: TokenAnswer,
    status: int,
    actor: str,
    reason: str | None,
    details: dict[str, str | int | bool],
) -> tuple[str, str, str | None]:
    """Action, actor and reason of a token answer's entry; its facts go into ``details``."""
    if answer.scope:
        details["scope"] = answer.scope[:500]
    if answer.jti:
        details["jti"] = answer.jti
    action = "token.issue" if status == 200 else "token.refuse"
    return action, f"client:{answer.client}" if answer.client else actor, reason or answer.reason


def _received(sightings: Sequence[Sighting], forwarded: bool, status: int) -> tuple[Sighting, ...]:
    """The sightings whose receiver got the data.

    The upstream once the request was forwarded; the caller only if the answer
    was also a 2xx (a refused request or a withheld error body released nothing).
    """
    if not forwarded:
        return ()
    released = 200 <= status < 300
    return tuple(s for s in sightings if s.receiver == "upstream" or released)


class GatewayAudit:
    """Builds and records the gateway's audit entries (and the lineage of identified persons)."""

    def __init__(self, sink: AuditSink, lineage: LineageIndex | None = None) -> None:
        """Record into ``sink``; persons identified in requests into ``lineage``.

        Without ``lineage`` a request that identified a person is withheld (503,
        fail closed): the gateway could not answer for where the data went.
        """
        self.sink = sink
        self.lineage = lineage

    async def request(
        self,
        request: web.BaseRequest,
        *,
        integration_name: str | None,
        integration: Integration | None,
        label: str,
        status: int,
        forwarded: bool,
        principal: Principal | None,
        reason: str | None,
        correlation_id: str,
        response_bytes: int,
        removed_fields: int,
        served: bool = False,
        upstream_country: str | None = None,
        sightings: Sequence[Sighting] = (),
        route: RouteLineage | None = None,
    ) -> bool:
        """Record one request; False when a required entry could not be made durable.

        ``forwarded``: a route's upstream answered; ``served``: one of the gateway's
        own endpoints answered (its status decides the outcome, as a route's does);
        neither: the gateway refused the request. ``upstream_country``: where the
        system the route forwards to is (its manifest ``location`` at the time), so
        the register's drift report sees which country received the request, and a
        country change even after the manifest moved on.
        ``sightings``: persons the route's locators identified; ``route``: where
        they go in the lineage index.
        """
        details: dict[str, str | int | bool] = {"route": label[:500], "method": request.method}
        if upstream_country is not None:
            details["upstream_country"] = upstream_country
        if principal is not None:
            details["credential"] = principal.credential
            details["auth"] = principal.method
        action = "gateway.request"
        actor = f"client:{principal.client}" if principal is not None else "anonymous"
        token = request.get(_TOKEN_ANSWER)
        if token is not None:  # one entry per token answer: the request's, as token.*
            action, actor, reason = _token_entry(token, status, actor, reason, details)
        if removed_fields:
            details["removed_fields"] = removed_fields
        identified = _received(sightings, forwarded, status) if sightings else ()
        if identified:
            details["subjects"] = len({(s.kind, s.value) for s in identified})
        request_bytes = request.content_length or 0
        required = bool(identified) or (
            forwarded and integration is not None and integration.audit_required
        )
        forwarded_or_served = forwarded or served
        decision = Decision(
            time_us=time.time_ns() // 1000,
            actor=actor,
            action=action,
            integration=integration_name,
            source=integration.source if integration is not None else None,
            target=integration.target if integration is not None else None,
            data_categories=integration.data_categories if integration is not None else (),
            records=1 if forwarded else 0,
            bytes=request_bytes + response_bytes if forwarded else 0,
            result="success" if forwarded_or_served and status < 400 else "failure",
            status=status,
            correlation_id=correlation_id,
            reason=reason[:2000] if reason else None,
            details=details,
            client_ip=client_address(request),
        )
        return await self._record(decision, required=required, identified=identified, route=route)

    def unparsed(
        self, request: web.BaseRequest, *, label: str, status: int, correlation_id: str, reason: str
    ) -> None:
        """Record an answer the gateway's handler did not give (best effort, never waited for).

        A request the HTTP parser refused (malformed framing, oversized headers)
        has no route, no caller and no trustworthy method: one ``gateway.request``
        entry, anonymous, under ``label``, with the connection's address.
        """
        decision = Decision(
            time_us=time.time_ns() // 1000,
            actor="anonymous",
            action="gateway.request",
            integration=None,
            source=None,
            target=None,
            data_categories=(),
            records=0,
            bytes=0,
            result="failure",
            status=status,
            correlation_id=correlation_id,
            reason=reason,
            details={"route": label},
            client_ip=client_address(request),
        )
        later = getattr(self.sink, "record_decision_later", None)
        if later is not None and later(decision):
            return
        try:
            entry = decision_entry(decision)
        except ValidationError as exc:  # a value the entry model refuses: never an error here
            _log.error("audit entry refused by its model", errors=exc.error_count())
            return
        self.sink.record_later(entry)

    async def _record(
        self,
        decision: Decision,
        *,
        required: bool,
        identified: Sequence[Sighting],
        route: RouteLineage | None,
    ) -> bool:
        """Record ``decision``: without its model where the sink can, else through it."""
        if not identified and not required:
            # The sink's cheap path for the gateway's own bounded values (no model).
            later = getattr(self.sink, "record_decision_later", None)
            if later is not None and later(decision):
                return True
        try:
            if not identified and required:
                await self._durable(decision)
                return True
            entry = decision_entry(decision)
        except ValidationError as exc:  # a value the entry model refuses: never a 500
            _log.error("audit entry refused by its model", errors=exc.error_count())
            return not required
        except AuditUnavailableError as exc:
            return _withheld(exc)
        if identified:
            return await self._identified(entry, identified, route)
        self.sink.record_later(entry)
        return True

    async def _durable(self, decision: Decision) -> None:
        """Make ``decision``'s entry durable: without its model where the sink can.

        :class:`AuditUnavailableError` if it cannot be made durable; pydantic's
        ``ValidationError`` if the model refuses a value the cheap path declined.
        """
        await record_decision(self.sink, decision)

    async def _identified(
        self, entry: AuditEntry, identified: Sequence[Sighting], route: RouteLineage | None
    ) -> bool:
        """Record ``entry`` durably, then the lineage of the persons it identified.

        The lineage's place is reserved first: a request whose persons could not
        be recorded (no index, or its queue full) is withheld (fail closed), and
        its entry says so (503) instead of what the upstream answered.
        """
        lineage = self.lineage
        if lineage is None or route is None or not lineage.reserve():
            why = "no lineage index" if lineage is None or route is None else "lineage queue full"
            _log.error("persons identified but not recordable; response withheld", reason=why)
            self.sink.record_later(
                entry.model_copy(
                    update={
                        "outcome": Outcome(result="failure", status=503),
                        "reason": f"response withheld: {why}",
                    }
                )
            )
            return False
        try:
            index = await self.sink.record_async(entry)
        except AuditUnavailableError as exc:
            lineage.record_later((), reserved=True)  # give the place back
            return _withheld(exc)
        # Hashing here is cheap (one HMAC per person); the inserts happen off the loop.
        lineage.record_later(
            route.records(
                identified,
                lineage.hasher,
                time=entry.time,
                audit_index=index,
                correlation_id=entry.correlation_id,
            ),
            reserved=True,
        )
        return True

    @staticmethod
    def token(request: web.BaseRequest, answer: TokenAnswer) -> None:
        """Note the token endpoint's answer to ``request`` for the request's one entry.

        That entry (:meth:`request`, written once the answer is final) is then
        ``token.issue`` (a 200) or ``token.refuse`` with the request's own facts
        (route, correlation id, address, status) and the answer's: the client,
        the scopes granted, the token's ``jti``, why it was refused. One entry
        instead of two halves the audit writer's work per token, and both halves
        now share the correlation id the caller sees.
        """
        request[_TOKEN_ANSWER] = answer

    def certificate_refused(
        self, client: str | None, serial: str | None, reason: str, remote: str | None, at: str
    ) -> None:
        """Record a client certificate refused ``at`` the handshake or a request (best effort)."""
        try:
            entry = AuditEntry(
                actor=f"client:{client}" if client else "anonymous",
                action="certificate.refuse",
                outcome=Outcome(result="failure", status=401),
                reason=reason,
                details={"at": at, **({"serial": serial} if serial else {})},
                client_ip=remote,
            )
        except ValidationError as exc:  # a name the entry model refuses: never a 500
            _log.error("audit entry refused by its model", errors=exc.error_count())
            return
        self.sink.record_later(entry)

    def lifecycle(self, action: str, details: dict[str, str | int | bool]) -> None:
        """Record a key or certificate event the gateway itself caused (rotation, renewal)."""
        self.sink.record_later(
            AuditEntry(
                actor="system:gateway",
                action=action,
                outcome=Outcome(result="success"),
                details=details,
            )
        )

    def reload(self, path: str, error: str | None) -> None:
        """Record a manifest reload, taken or refused."""
        self.sink.record_later(
            AuditEntry(
                actor="system:gateway",
                action="manifest.reload",
                outcome=Outcome(result="failure" if error else "success"),
                reason=error[:2000] if error else None,
                details={"path": path[-500:]},
            )
        )


def _withheld(exc: AuditUnavailableError) -> bool:
    """Log a required entry that could not be made durable; False: withhold the response."""
    _log.error("audit entry not written; response withheld", error=exc.message)
    return False
