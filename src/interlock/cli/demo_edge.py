"""``interlock demo --edge``: the same walkthrough, with nginx carrying the bytes.

Next to the demo's gateway it starts the decision endpoint (a unix socket in
the demo's data directory) and nginx, run on the configuration
:func:`~interlock.gateway.edge.nginx.render_nginx` generates for the demo's
manifest: a TLS listener with a certificate from the deployment's local CA,
one worker, its prefix, pid file, error log and temporary files in the data
directory (never the system's nginx configuration). The walkthrough's calls
go to nginx; each says whether nginx answered after Interlock's decision or
passed the request to Interlock's own pipeline (routes that read the body or
the response, and Interlock's own endpoints: docs/edge.md). While serving,
both print the demo's line per request. Stopping the demo stops nginx and
the decision endpoint before the data directory goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import ip_network
from pathlib import Path
from typing import Final

from rich.table import Table
from rich.text import Text

from interlock.cli.context import console
from interlock.cli.demo_serving import RequestLines, line
from interlock.cli.output import Col, print_table, table
from interlock.config.manifest import Manifest
from interlock.config.settings import Settings
from interlock.crypto.keyfile import write_private_file
from interlock.errors import ConfigError
from interlock.gateway.edge.decision import EdgeDecisions
from interlock.gateway.edge.listener import MAX_SOCKET_PATH, DecisionListener, start_decisions
from interlock.gateway.edge.nginx import NginxOptions, render_nginx
from interlock.gateway.edge.protocol import CONVENTIONS, needs_body
from interlock.gateway.observer import RequestSeen
from interlock.gateway.preflight import check_port_free
from interlock.gateway.routing import CompiledRoute
from interlock.gateway.server import RunningGateway
from interlock.pki import LOCAL_CA_NAME
from interlock.pki.authority import Pki
from interlock.store import Deployment

__all__ = [
    "NOTE",
    "EdgeFront",
    "EdgeLines",
    "edge_settings",
    "nginx_binary",
    "nginx_port",
    "route_table",
    "show_front",
    "start_edge",
    "stop_front",
    "why_through",
]

_INSTALL: Final = "make nginx, or apt-get install nginx-light"
_DECIDED: Final = "nginx answered after Interlock's decision"
_FORWARDED: Final = "Interlock decided, nginx forwarded it to the system and answered"
_ON_ITS_OWN: Final = "nginx answered on its own"
_OWN_ENDPOINT: Final = "Interlock's own endpoint"
_START_SECONDS: Final = 10.0
SAMPLE_SYSTEM: Final = "erp"  # the one system the demo runs (the sample ERP)
_NOWHERE: Final = "https://127.0.0.1:9"
_BODYLESS: Final = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
_FG: Final = ("-g", "daemon off;")  # in the foreground: the demo's child, stopped by it

#: The walkthrough's per-call remark, by the answer's X-Request-Id (edge mode only).
NOTE: ContextVar[EdgeLines | None] = ContextVar("interlock_demo_edge_note", default=None)


def nginx_binary() -> str:
    """nginx's path; a one-line error saying how to install it when it is missing."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise ConfigError(f"interlock demo --edge needs nginx, which is not installed ({_INSTALL})")
    return found


def nginx_port(port: int) -> int:
    """``port`` when free, else any free loopback port (a demo takes what there is)."""
    if port:
        try:
            check_port_free("127.0.0.1", port)
        except ConfigError:
            pass
        else:
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def edge_settings(current: Settings, port: int) -> Settings:
    """The demo's settings behind nginx: nginx's URL is the public one, nginx a trusted proxy."""
    return current.model_copy(
        update={
            "public_url": f"https://127.0.0.1:{port}",
            "trusted_proxies": (ip_network("127.0.0.1/32"),),
        }
    )


class EdgeLines(RequestLines):
    """The demo's request lines from both sides: the decision endpoint and the gateway.

    Calling it (the gateway's observer) means nginx passed the request to
    Interlock's pipeline; :meth:`decided` (the decision endpoint's) that nginx
    asked for a decision. Either way the correlation id is remembered for
    :meth:`note`, the walkthrough's remark on the call.
    """

    def __init__(self) -> None:
        """Silent until :attr:`live`; remembers which side saw each correlation id."""
        super().__init__()
        self._seen: dict[str, str] = {}
        self.why: dict[str, str] = {}  # route label: why it passes through (set by start_edge)

    def __call__(self, seen: RequestSeen) -> None:
        """The gateway answered ``seen`` (nginx passed it through)."""
        why = self.why.get(seen.route, _OWN_ENDPOINT)
        self._hear(seen, f"nginx passed it to Interlock's pipeline: {why}")

    def decided(self, seen: RequestSeen) -> None:
        """The decision endpoint decided ``seen``; nginx answers (or forwards) accordingly."""
        self._hear(seen, _FORWARDED if seen.outcome == "allowed" else _DECIDED)

    def _hear(self, seen: RequestSeen, how: str) -> None:
        if not self.live:
            self._seen[seen.correlation_id] = how  # the walkthrough's calls only
            return
        said = line(seen, _now())
        said.append(f"  ({how})", "dim")
        console.print(said, soft_wrap=True, highlight=False)

    def note(self, correlation_id: str | None) -> Text:
        """What carried the call whose answer had ``correlation_id`` (its X-Request-Id)."""
        how = self._seen.pop(correlation_id or "", _ON_ITS_OWN)
        return Text(f"  {how}", "dim")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class EdgeFront:
    """nginx and the decision endpoint in front of the demo's gateway."""

    base: str  # nginx's URL: the walkthrough's and the curl lines'
    conf: Path
    process: subprocess.Popen[bytes]
    decisions: DecisionListener
    routes: tuple[CompiledRoute, ...]

    async def stop(self) -> None:
        """Stop nginx (fast shutdown, waited for), then the decision endpoint."""
        try:
            await asyncio.to_thread(_stop_nginx, self.process)
        finally:
            await self.decisions.stop()
            _remove_socket_dir(self.decisions.path)


async def stop_front(front: EdgeFront | None) -> None:
    """Stop nginx and the decision endpoint, when they were started."""
    if front is not None:
        await front.stop()


def show_front(front: EdgeFront) -> None:
    """Where nginx listens and what it runs, under the demo's header."""
    console.print(
        f"  edge mode       nginx {front.base} (pid {front.process.pid}, one worker, "
        f"configuration {front.conf}, generated as interlock edge nginx does); decisions on "
        f"unix:{front.decisions.path}. Each call below says whether nginx answered after "
        "Interlock's decision or passed it to Interlock's pipeline (docs/edge.md); paths no "
        "route has are decided. Stopping the demo stops nginx and the decision endpoint "
        "before the data directory goes.\n",
        markup=False,
        soft_wrap=True,
        highlight=False,
    )
    print_table(route_table(front.routes))


async def start_edge(
    deployment: Deployment,
    manifest: Manifest,
    gateway: RunningGateway,
    binary: str,
    lines: EdgeLines,
) -> EdgeFront:
    """The decision endpoint, then nginx on the generated configuration, until it listens."""
    routes = tuple(gateway.gateway.routes.routes)
    lines.why = {r.label: why for r in routes if (why := why_through(r)) is not None}
    settings = deployment.settings
    public = settings.public_url or ""
    port = int(public.rsplit(":", 1)[1])
    work = settings.data_dir / "edge"
    work.mkdir(mode=0o700)
    options = _options(deployment, gateway, work, port)
    conf = work / "nginx.conf"
    conf.write_text(render_nginx(_offline(manifest), options))
    decisions = EdgeDecisions(
        lambda: gateway.front.current,
        CONVENTIONS["nginx"],
        gateway.services.proxies,
        observer=lines.decided,
    )
    try:
        listener = await start_decisions(decisions, options.decision_socket, {os.getuid()})
    except BaseException:
        _remove_socket_dir(options.decision_socket)
        raise
    try:
        process = await asyncio.to_thread(_start_nginx, binary, conf, port)
    except BaseException:
        await listener.stop()
        _remove_socket_dir(listener.path)
        raise
    return EdgeFront(public, conf, process, listener, routes)


def why_through(route: CompiledRoute) -> str | None:
    """Why nginx passes ``route`` to Interlock's pipeline; None: it is decided at the edge."""
    if not needs_body(route):
        return None
    spec = route.route
    reasons = [
        what
        for what, present in (
            (f"{spec.method} carries a body", spec.method not in _BODYLESS),
            ("it minimises the response (response_fields)", spec.response_fields is not None),
            ("request_fields", spec.request_fields is not None),
            ("business rules", bool(spec.rules)),
            ("replay protection", spec.replay is not None),
            ("idempotency", spec.idempotency is not None),
        )
        if present
    ]
    return "; ".join(reasons) or "its data-subject locators read the response"


def route_table(routes: Sequence[CompiledRoute]) -> Table:
    """Each route: decided at the edge (nginx forwards) or passed to Interlock's pipeline."""
    result = table("Edge mode: who answers each route", Col("route", identifier=True), "at nginx")
    for route in routes:
        why = why_through(route)
        result.add_row(
            route.label,
            "decided by Interlock, forwarded by nginx"
            if why is None
            else f"through Interlock: {why}",
        )
    return result


def _offline(manifest: Manifest) -> Manifest:
    """The manifest for nginx's file: the systems the demo does not run, on loopback.

    nginx resolves every upstream's host when it starts, and the example's
    other systems are names that resolve nowhere. The demo has no secrets for
    them, so their routes are refused (503) before anything is forwarded; in
    nginx's file they are ``127.0.0.1:9`` so that nginx starts without DNS.
    """
    systems = {
        name: system if name == SAMPLE_SYSTEM else system.model_copy(update={"url": _NOWHERE})
        for name, system in manifest.systems.items()
    }
    return manifest.model_copy(update={"systems": systems})


def _options(
    deployment: Deployment, gateway: RunningGateway, work: Path, port: int
) -> NginxOptions:
    """Everything on loopback, every file in ``work``; nginx's certificate from the local CA."""
    pki = Pki(
        deployment.engine,
        deployment.keyring,
        deployment.deployment_id,
        deployment.settings.trust_domain,
    )
    issued = pki.issue_server(["localhost", "127.0.0.1"], ephemeral=True)
    cert, key = work / "server.pem", work / "server.key"
    cert.write_bytes(issued.certificate_pem)
    write_private_file(key, issued.private_key_pem)
    for kind in ("client_body", "proxy"):
        (work / "tmp" / kind).mkdir(parents=True)
    return NginxOptions(
        listen=f"127.0.0.1:{port}",
        certificate=cert,
        private_key=key,
        decision_socket=_socket_path(work),
        interlock=f"127.0.0.1:{gateway.port}",
        interlock_ca=gateway.ca_file,
        prefix=work,
        anchors={f"pki:{LOCAL_CA_NAME}": gateway.ca_file},
        workers="1",
        # The worker asks for decisions on a socket only this user may use.
        user="root" if os.geteuid() == 0 else None,
    )


def _socket_path(work: Path) -> Path:
    """``work/authz.sock``, or one in a fresh short directory under /tmp when that path is
    longer than a unix socket allows (a deep TMPDIR); removed with the socket."""
    inside = work / "authz.sock"
    if len(os.fsencode(inside)) <= MAX_SOCKET_PATH:
        return inside
    return Path(tempfile.mkdtemp(prefix=_SOCKET_DIR_PREFIX, dir="/tmp")) / "authz.sock"


def _remove_socket_dir(socket_path: Path) -> None:
    """Remove the short directory :func:`_socket_path` made, once its socket is gone."""
    if socket_path.parent.name.startswith(_SOCKET_DIR_PREFIX):
        socket_path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            socket_path.parent.rmdir()


_SOCKET_DIR_PREFIX: Final = "interlock-edge-"


def _start_nginx(binary: str, conf: Path, port: int) -> subprocess.Popen[bytes]:
    """nginx in the foreground on ``conf`` (its own prefix), once ``port`` answers."""
    prefix = conf.parent
    with (prefix / "nginx.stderr").open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603  (fixed arguments)
            [binary, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf), *_FG],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    deadline = time.monotonic() + _START_SECONDS
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        if process.poll() is not None:
            said = (prefix / "nginx.stderr").read_text(errors="replace").strip().splitlines()
            raise ConfigError(f"nginx did not start: {said[-1] if said else 'no message'}")
        time.sleep(0.05)
    _stop_nginx(process)
    raise ConfigError(f"nginx did not listen on 127.0.0.1:{port} within {_START_SECONDS:.0f} s")


def _stop_nginx(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (nginx's fast shutdown: the worker goes with it), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
