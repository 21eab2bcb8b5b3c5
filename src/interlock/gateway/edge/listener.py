"""The decision endpoint's listener: a unix socket only the configured proxy may use.

Never the public listener, never a TCP port: a decision request carries the
caller's credential and tells Interlock which certificate the proxy verified,
so whoever can send one can impersonate any client. Two locks, both checked
by the kernel rather than by a secret that would have to be written into the
proxy's configuration files:

* the socket file is created mode 0660 (owner and group only) — put it in a
  directory only Interlock and the proxy's group can enter;
* every request's peer is read from the socket (``SO_PEERCRED``): a process
  whose user id is not one of ``proxy_uids`` is refused with 403.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from weakref import WeakKeyDictionary

from aiohttp import web

from interlock.errors import ConfigError, Refusal
from interlock.gateway.edge.decision import EdgeDecisions
from interlock.gateway.edge.protocol import AUTHZ_PATH
from interlock.gateway.problems import problem_response
from interlock.logs import get_logger

__all__ = [
    "MAX_SOCKET_PATH",
    "DecisionListener",
    "check_socket_path",
    "decision_handler",
    "listening_pid",
    "start_decisions",
]

_log = get_logger("interlock.gateway.edge")
_UCRED: Final = struct.Struct("3i")  # struct ucred: pid, uid, gid
# A connection's transport -> its peer's user id (gone with the connection).
_PEERS: Final[WeakKeyDictionary[asyncio.BaseTransport, int]] = WeakKeyDictionary()
_MODE: Final = 0o660
#: sockaddr_un.sun_path on Linux is 108 bytes with its terminating NUL.
MAX_SOCKET_PATH: Final = 107


def peer_uid(request: web.BaseRequest) -> int | None:
    """The user id of the process at the other end of ``request``'s unix socket.

    Read once per connection: ``SO_PEERCRED`` gives the peer's credentials as they
    were at ``connect()``, the same for every request the connection carries.
    """
    transport = request.transport
    if transport is None:
        return None
    remembered = type(transport).__weakrefoffset__ != 0  # uvloop's and asyncio's are
    if remembered:
        known = _PEERS.get(transport)
        if known is not None:
            return known
    uid = _read_peer_uid(transport)
    if uid is not None and remembered:
        _PEERS[transport] = uid
    return uid


def _read_peer_uid(transport: asyncio.BaseTransport) -> int | None:
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError:
        return None
    _pid, uid, _gid = _UCRED.unpack(raw)
    return int(uid)


class _Handler:
    def __init__(self, decisions: EdgeDecisions, uids: frozenset[int]) -> None:
        self._decisions = decisions
        self._uids = uids

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        if peer_uid(request) not in self._uids:
            _log.warning("decision request refused: not from the configured proxy")
            refused = Refusal(
                "access-denied",
                "decisions are answered for the configured proxy only",
                log_reason="edge: decision request from another user",
            )
            return problem_response(refused, os.urandom(16).hex(), AUTHZ_PATH)
        if request.path != AUTHZ_PATH and not request.path.startswith(AUTHZ_PATH + "/"):
            missing = Refusal("not-found", "the decision endpoint is " + AUTHZ_PATH)
            return problem_response(missing, os.urandom(16).hex(), AUTHZ_PATH)
        return await self._decisions.handle(request)


def decision_handler(
    decisions: EdgeDecisions, proxy_uids: Iterable[int]
) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    """The listener's request handler: the peer check, the path, then ``decisions``.

    For :func:`start_decisions` and for an in-process measurement of a decision's cost
    (benchmarks/gateway/decision_cpu.py).
    """
    return _Handler(decisions, frozenset(proxy_uids))


def check_socket_path(path: Path) -> None:
    """Refuse ``path`` for a decision socket unless it is absent or a stale socket.

    A socket something still accepts on belongs to another decision process
    (two workers given the same number): taking it over would leave that one
    running without a socket, so this one refuses to start instead. Commands
    call this before they start anything; :func:`start_decisions` again.
    """
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ConfigError(
            f"cannot listen on {path}: a unix socket path has at most {MAX_SOCKET_PATH} bytes "
            f"(this one has {len(os.fsencode(path))}); choose a shorter one"
        )
    if path.exists() and not path.is_socket():
        raise ConfigError(f"{path} exists and is not a socket; refusing to replace it")
    if path.is_socket() and _accepting(path):
        raise ConfigError(
            f"{path}: another process is listening on it (each edge serve --worker "
            "needs a number of its own); stop it first"
        )


def listening_pid(path: Path) -> int:
    """The process id of the decision process listening on ``path`` (``OSError``: none there).

    The kernel's word (``SO_PEERCRED`` of a connection: the listener's process
    as it was at ``listen()``), never a pid file that may have outlived its
    process and name another one. The connection is closed at once, before
    any request.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2.0)
        probe.connect(str(path))
        pid, _, _ = _UCRED.unpack(
            probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        )
    if pid <= 0:
        raise OSError(f"no process named for {path}")
    return int(pid)


def _clear(path: Path) -> None:
    """Remove a stale socket left by a previous run; never anything else, nor a live one."""
    check_socket_path(path)
    path.unlink(missing_ok=True)


def _accepting(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:  # refused (nobody listens: stale), or not ours to reach
            return False
        return True


@dataclass
class DecisionListener:
    """A started decision listener; :meth:`stop` closes it and removes the socket."""

    runner: web.ServerRunner
    path: Path

    async def stop(self) -> None:
        """Stop answering; remove the socket file."""
        await self.runner.cleanup()
        self.path.unlink(missing_ok=True)


async def start_decisions(
    decisions: EdgeDecisions, path: Path, proxy_uids: Iterable[int]
) -> DecisionListener:
    """Serve ``decisions`` on the unix socket ``path`` for the processes of ``proxy_uids``."""
    uids = frozenset(proxy_uids)
    if not uids:
        raise ConfigError("the decision listener needs the proxy's user id (--proxy-user)")
    _clear(path)
    server = web.Server(decision_handler(decisions, uids), access_log=None)
    runner = web.ServerRunner(server, handle_signals=False)
    await runner.setup()
    try:
        await web.UnixSite(runner, str(path), backlog=1024).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"cannot listen on {path}: {exc.strerror or exc}") from None
    # Connecting needs write permission: owner and group only (the peer check is the second lock).
    path.chmod(_MODE)  # noqa: ASYNC240  (one syscall at start-up)
    _log.info("decision endpoint listening", socket=str(path))
    return DecisionListener(runner, path)
