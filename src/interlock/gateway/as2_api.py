"""``POST /v1/as2/{integration}``: the AS2 receiver; ``POST /v1/as2/{integration}/mdn``: MDNs.

A partner of an inbound AS2 integration posts its messages to the first
(:class:`~interlock.files.as2_receive.As2Receiver`: identified by its AS2
ids, decrypted, verified, checked in quarantine, answered with a signed MDN;
a refused file is also reported to the partner as its ``notify:`` declares,
like a file refused over SFTP or the drop server);
a partner of an outbound one posts its asynchronous MDNs to the second
(:class:`~interlock.files.as2_async.MdnReceiver`). AS2 authenticates by the
message's signature, not by a gateway credential: the partner's pinned
certificate is the credential. Refusals without an MDN are RFC 9457
problems; everything else is an MDN, whose error modifiers say no more than
the class of failure.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
from aiohttp import web
from sqlalchemy import Engine

from interlock.audit import AuditSink
from interlock.config.manifest import Manifest
from interlock.errors import Refusal
from interlock.files.as2_async import As2Messages, MdnReceiver, post_mdn
from interlock.files.as2_profile import Resolve, as2_flow
from interlock.files.as2_receive import As2Receiver, MdnDelivery
from interlock.files.notify import Notifier
from interlock.files.quarantine import Quarantine
from interlock.gateway.body import read_limited
from interlock.gateway.partner_notify import partner_notifier
from interlock.replay.seen import SeenOnce

__all__ = ["PREFIX", "As2Endpoint", "build_as2_endpoint", "label"]

PREFIX: Final = "/v1/as2"
_MDN: Final = "/mdn"
_ENVELOPE: Final = 64 * 1024  # room for MIME headers, signature and envelope around a file
_MAX_MDN: Final = 1024 * 1024
_STATUS_CODES: Final = {403: "access-denied", 400: "invalid-request"}


def label(path: str) -> str:
    """The metrics and audit label of a request under the prefix: a template, never a name."""
    return PREFIX + "/{integration}" + (_MDN if path.endswith(_MDN) else "")


@dataclass(frozen=True)
class As2Endpoint:
    """The receivers of the manifest's inbound AS2 integrations and MDN takers of outbound ones."""

    receivers: Mapping[str, tuple[As2Receiver, int]]  # integration -> (receiver, max file size)
    mdn_takers: Mapping[str, MdnReceiver]
    # Tells partners of the files their receivers' quarantines refuse (their notify:).
    notifier: Notifier | None = None

    async def __call__(self, request: web.BaseRequest) -> web.Response:
        """Receive a message or an MDN for the integration the path names."""
        if request.method != "POST":
            raise Refusal(
                "method-not-allowed", "AS2 messages are POSTed", headers={"Allow": "POST"}
            )
        name = request.path.removeprefix(PREFIX + "/")
        headers = {key.lower(): value for key, value in request.headers.items()}
        if name.endswith(_MDN):
            taker = self.mdn_takers.get(name.removesuffix(_MDN))
            if taker is None:
                raise Refusal("not-found", "no outbound AS2 integration takes MDNs here")
            answer = await taker.receive(headers, await read_limited(request, _MAX_MDN))
            _refuse(answer.status, answer.problem)
            return web.Response(status=200)
        found = self.receivers.get(name)
        if found is None:
            raise Refusal("not-found", "no inbound AS2 integration at this path")
        receiver, max_size = found
        limit = max_size * 4 // 3 + _ENVELOPE  # a base64 envelope is a third larger
        message = await receiver.receive(headers, await read_limited(request, limit))
        _refuse(message.status, message.problem)
        return web.Response(status=message.status, headers=message.headers, body=message.body)


def build_as2_endpoint(
    manifest: Manifest,
    *,
    resolve: Resolve,
    anchors: Mapping[str, Path],
    manifest_dir: Path | None,
    files_root: Path,
    engine: Engine,
    seen: SeenOnce,
    audit: AuditSink,
    notify_auth: Callable[[], httpx.Auth] | None = None,
) -> As2Endpoint | None:
    """The endpoint for ``manifest``'s AS2 integrations; None when it has none.

    A file a receiver's quarantine refuses is reported to the partner as its
    ``notify:`` says (besides the negative MDN); ``notify_auth`` signs the
    webhook way (None: that way fails, audited).
    """
    notifier = partner_notifier(
        manifest,
        root=files_root,
        resolve=resolve,
        anchors=anchors,
        audit=audit,
        auth=notify_auth,
    )
    receivers: dict[str, tuple[As2Receiver, int]] = {}
    takers: dict[str, MdnReceiver] = {}
    for name, flow in manifest.integrations.items():
        if flow.files is None or flow.files.transport != "as2":
            continue
        as2 = as2_flow(manifest, name, resolve=resolve, anchors=anchors, base=manifest_dir)
        if flow.files.direction == "outbound":
            takers[name] = MdnReceiver(as2, As2Messages(engine), audit=audit)
            continue
        quarantine = Quarantine(
            files_root, manifest, name, audit=audit, manifest_dir=manifest_dir, notifier=notifier
        )
        anchor = as2.peer.anchor
        receiver = As2Receiver(
            as2,
            quarantine=quarantine,
            seen=seen,
            audit=audit,
            post_mdn=functools.partial(_post, anchor=anchor),
        )
        receivers[name] = (receiver, flow.files.max_size)
    if not receivers and not takers:
        return None
    return As2Endpoint(receivers, takers, notifier)


async def _post(delivery: MdnDelivery, *, anchor: Path | None) -> str | None:
    return await post_mdn(delivery, anchor)


def _refuse(status: int, problem: str | None) -> None:
    if problem is not None:
        raise Refusal(_STATUS_CODES.get(status, "invalid-request"), problem)
