"""TLS handshakes per second: ``interlock serve`` against nginx, full and resumed, TLS 1.2 and 1.3.

Starts, on 127.0.0.1 only, with the same certificate and key (ECDSA P-256 from
the deployment's local CA):

- ``interlock serve`` (one process: its listener context is Mozilla
  "intermediate", ``interlock.gateway.tls.server_context``), and
- nginx, the named peer, with one worker and Mozilla's intermediate settings
  for nginx (versions, suites, groups, no server preference, a shared session
  cache, no session tickets; no ``ssl_dhparam``, since the ECDSA certificate
  makes the DHE-RSA suites unusable anyway),

both pinned to CPU 0 and capped at the same CPU share (below), each answering ``GET /healthz`` with a tiny JSON body.
A third server, for information, is the stack floor: aiohttp on uvloop alone with
Interlock's TLS context (``aiohttp_server.py``), so that the ratios also say how
much of the gap is Interlock's own work per connection and how much is the
Python stack's (``*-handshakes-vs-aiohttp``, ``*-handshakes-aiohttp-vs-nginx``).
``openssl s_time`` drives them from both CPUs (the servers are capped, below): ``-new`` makes every connection a
full handshake, ``-reuse`` resumes the first connection's session on every
later one (TLS 1.2: session id or ticket, whichever the server offers; TLS
1.3: PSK from a ticket; ``-www`` reads the answer, so the TLS 1.3 tickets that
follow the handshake arrive). Each connection sends one HTTP/1.0 request and
is closed. ``--clients`` s_time processes run at once; runs alternate between
the servers (drift on a shared machine hits both alike) and each column is the
median over ``--repeat`` runs (``resumed``: the lowest share). A resumed run in
which fewer than 95% of connections resumed stops the benchmark rather than
report full handshakes as resumed.

What is compared, and why both servers are capped. On a two-CPU machine one
client core cannot saturate a whole server core: s_time (OpenSSL 3.0) spends
about 1 ms of CPU per full handshake, nginx about a quarter of that, so with a
whole core nginx sat at 20-60% busy, and dividing by its CPU-seconds then
charged it for waking up per connection, which a saturated server amortises
(its rate per CPU-second rose with load). So each server runs in a CPU cgroup
of its own capped at ``--quota`` of one core (CFS bandwidth: 5% by default,
a 20 ms period), low enough that ``--clients`` concurrent s_time processes on
both cores keep either server's queue full. Every run checks, from the
cgroup's own ``cpu.stat``, that the server ran out of its quota in at least 70%
of the periods in which it had work (saturated: it wanted more CPU than it was
given); a run below that stops the benchmark ("not saturated") rather than
report an unsaturated figure. Under a load average of 20-30 from other work
on the machine, Interlock ran out of quota in about 95% of periods and nginx,
the cheaper server, in 75-90%: 48 clients were needed for nginx. Both servers
are then measured the same way, saturated on the same CPU share: the ratio lines
compare handshakes per second of the server's CPU time (``per cpu-s``,
equivalently handshakes per second at the same share), Interlock's over
nginx's, per TLS version and as the geometric mean of the versions. The
table also shows wall-clock handshakes per second, the server's busy share
of one core (``cpu``, next to the quota) and the client core's.

A machine without a writable cgroup ``cpu`` controller (root, cgroup v1
``cpu.cfs_quota_us`` or v2 ``cpu.max``) cannot run this method: the benchmark
is then recorded as skipped (``benchmarks/results.py``), not run unsaturated.

Run:  .venv/bin/python benchmarks/tls/run.py  [--duration 5] [--repeat 3] [--clients 48]
      [--quota 0.05] [--versions 1.2 1.3]

The output ends with ``ratio full-handshakes-vs-nginx: R (target >= T) met|missed``
and the same for ``resumed`` (Interlock / nginx, handshakes per CPU-second,
geometric mean over the TLS versions). The issue names no target: 0.5 is our
own bar.

nginx comes from Debian's package and is installed if missing (root); openssl
and taskset must be present; two CPUs are needed. Note: the load tool
(``openssl s_time``) does not verify server certificates; it only ever talks to
the processes this script starts on 127.0.0.1. Before any load, a verifying
client (the local CA as sole trust anchor, host-name checks) checks that each
server answers 200 over TLS 1.2 and 1.3.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import re
import resource
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

if __package__ in {None, ""}:  # run as a file: make ``benchmarks.common`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import (
    Sandbox,
    cpu_seconds,
    ensure_tools,
    free_port,
    processes,
    sandbox,
    wait_port,
    wait_ready,
)
from benchmarks.results import report as report_figure
from benchmarks.results import skip
from interlock.gateway.tls import INTERMEDIATE_CIPHERS, client_context

TARGET = 0.5
#: A run counts as saturated when the server ran out of its quota in at least this share
#: of the CFS periods in which it had work (the kernel's ``nr_throttled``/``nr_periods``).
SATURATED = 0.7
#: The CFS bandwidth period; the kernel's smallest quota is 1 ms, so 5% needs 20 ms.
CFS_PERIOD_US = 20_000
SERVER_CPU = "0"
CLIENT_CPU = "0,1"
MIN_REUSED = 0.95
WARM_UP_SECONDS = 1
MANIFEST = "version: 1\n"
MODES = {"full": "-new", "resumed": "-reuse"}
S_TIME_VERSION = {"1.2": "-tls1_2", "1.3": "-tls1_3"}

# Mozilla intermediate for nginx (ssl-config.mozilla.org, guidelines 5.7).
NGINX = """\
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_session_timeout 1d;
    ssl_session_cache shared:MozSSL:10m;
    ssl_session_tickets off;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ecdh_curve X25519:prime256v1:secp384r1;
    ssl_ciphers {ciphers};
    ssl_prefer_server_ciphers off;
    location = /healthz {{ default_type application/json; return 200 '{{"status":"ok"}}'; }}
  }}
}}
"""

_CONNECTIONS = re.compile(r"^(\d+) connections in [\d.]+s;", re.MULTILINE)


@dataclass(frozen=True)
class Server:
    """A started server: its name, port and process (whose tree is charged for CPU)."""

    name: str
    port: int
    pid: int


@dataclass(frozen=True)
class Run:
    """One measurement: ``clients`` s_time processes against one server for one case."""

    connections: int
    reused: int  # connections s_time marked as resumed ("r"), of those it marked at all
    marked: int
    seconds: float  # wall clock, first start to last exit
    server_cpu: float  # the server's CPU seconds over the same span
    client_cpu: float  # the s_time processes' CPU seconds

    @property
    def rate(self) -> float:
        """Handshakes (connections) per second."""
        return self.connections / self.seconds

    @property
    def per_cpu_second(self) -> float:
        """Handshakes per second of the server's CPU time."""
        return self.connections / self.server_cpu if self.server_cpu else float("nan")

    @property
    def busy(self) -> float:
        """How much of its one core the server used."""
        return self.server_cpu / self.seconds

    @property
    def client_busy(self) -> float:
        """How much of its one core the load generator used."""
        return self.client_cpu / self.seconds

    @property
    def reuse(self) -> float:
        """The share of connections that resumed a session."""
        return self.reused / self.marked if self.marked else 0.0


def s_time(server: Server, version: str, mode: str, seconds: int, clients: int) -> Run:
    """``clients`` concurrent ``openssl s_time`` processes on CPUs 0 and 1 for ``seconds``."""
    command = [
        "taskset",
        "-c",
        CLIENT_CPU,
        "openssl",
        "s_time",
        "-connect",
        f"127.0.0.1:{server.port}",
        MODES[mode],
        S_TIME_VERSION[version],
        "-time",
        str(seconds),
        "-www",
        "/healthz",
    ]
    cpu_before = cpu_seconds(server.pid)
    client_before = _children_cpu()
    started = time.monotonic()
    drivers = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(clients)
    ]
    outputs = [driver.communicate(timeout=seconds + 60) for driver in drivers]
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(server.pid) - cpu_before
    client_cpu = _children_cpu() - client_before
    connections = reused = marked = 0
    for driver, (out, err) in zip(drivers, outputs, strict=True):
        found = _CONNECTIONS.search(out)
        if driver.returncode != 0 or found is None:
            raise SystemExit(f"{server.name}: s_time failed ({driver.returncode}): {err or out}")
        connections += int(found.group(1))
        progress = out[: found.start()]
        reused += progress.count("r")
        marked += progress.count("r") + progress.count("*")
    return Run(connections, reused, marked, elapsed, cpu, client_cpu)


def _children_cpu() -> float:
    # Waited-for children only: the s_time processes (the servers are waited for at exit).
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def check(server: Server, ca_file: Path) -> None:
    """A verifying client gets 200 from ``/healthz`` over TLS 1.2 and over TLS 1.3."""
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        context = client_context(ca_file)
        context.minimum_version = context.maximum_version = version
        connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=context)
        try:
            connection.request("GET", "/healthz")
            answer = connection.getresponse()
            answer.read()
            negotiated = connection.sock.version() if connection.sock else None
        finally:
            connection.close()
        if answer.status != 200:
            raise SystemExit(f"{server.name}: GET /healthz answered {answer.status}")
        if negotiated != version.name.replace("_", "."):
            raise SystemExit(f"{server.name}: asked for {version.name}, got {negotiated}")


def start_nginx(box: Sandbox, started: list[subprocess.Popen[bytes]]) -> Server:
    """nginx, one worker, Mozilla intermediate, pinned to CPU 0."""
    port = free_port()
    prefix = box.work / "nginx"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX.format(
            user="user root;" if os.geteuid() == 0 else "",
            prefix=prefix,
            port=port,
            cert=box.server_cert,
            key=box.server_key,
            ciphers=INTERMEDIATE_CIPHERS,
        )
    )
    command = ["nginx", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]
    process = subprocess.Popen(["taskset", "-c", SERVER_CPU, *command])
    started.append(process)
    wait_port(port)
    return Server("nginx", port, process.pid)


def start_aiohttp(box: Sandbox, started: list[subprocess.Popen[bytes]]) -> Server:
    """The stack floor (``aiohttp_server.py``): aiohttp + uvloop, Interlock's TLS context."""
    port = free_port()
    script = Path(__file__).with_name("aiohttp_server.py")
    command = [sys.executable, str(script), str(box.server_cert), str(box.server_key), str(port)]
    process = subprocess.Popen(["taskset", "-c", SERVER_CPU, *command], env=box.env)
    started.append(process)
    wait_port(port, timeout=60)
    return Server("aiohttp", port, process.pid)


def start_interlock(box: Sandbox, started: list[subprocess.Popen[bytes]]) -> Server:
    """``interlock serve`` with the same certificate and key, one process, pinned to CPU 0."""
    port = free_port()
    manifest = box.work / "interlock.yaml"
    manifest.write_text(MANIFEST)
    serve = [
        *("--manifest", str(manifest), "--listen", f"127.0.0.1:{port}"),
        *("--cert", str(box.server_cert), "--key", str(box.server_key)),
    ]
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, sys.executable, "-m", "interlock", "serve", *serve],
        env=box.env,
        stdout=subprocess.DEVNULL,
    )
    started.append(process)
    wait_port(port, timeout=120)  # one core of a loaded machine: slow start
    wait_ready(port, box.ca_file)  # it answers 503 until it is ready
    return Server("interlock", port, process.pid)


class CpuCap:
    """A CPU cgroup capping the processes moved into it at ``quota`` of one core."""

    V1: Final = Path("/sys/fs/cgroup/cpu")
    V2: Final = Path("/sys/fs/cgroup")

    def __init__(self, name: str, quota: float) -> None:
        """Create the cgroup (``OSError`` when this machine does not allow it)."""
        us = round(quota * CFS_PERIOD_US)
        if us < 1000:  # the kernel refuses less: never cap at a share other than asked
            raise OSError(f"a quota of {quota:.1%} is below 1 ms per {CFS_PERIOD_US} us period")
        if (self.V1 / "cpu.cfs_quota_us").exists():
            self.path = self.V1 / name
            self.path.mkdir()
            (self.path / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(us))
        elif "cpu" in (self.V2 / "cgroup.controllers").read_text().split():
            self.path = self.V2 / name
            self.path.mkdir()
            (self.path / "cpu.max").write_text(f"{us} {CFS_PERIOD_US}")
        else:
            raise OSError("no cgroup cpu controller")

    def add(self, pid: int) -> None:
        """Move ``pid`` and its live descendants into the cgroup (later children inherit it)."""
        pending = [pid]
        while pending:
            current = pending.pop()
            (self.path / "cgroup.procs").write_text(str(current))
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            pending.extend(int(child) for child in children)

    def throttled(self) -> tuple[int, int]:
        """(periods with runnable work, periods that ran out of quota) so far: ``cpu.stat``."""
        lines = (self.path / "cpu.stat").read_text().splitlines()
        stat = {key: int(value) for key, value in (line.split() for line in lines if line)}
        return stat.get("nr_periods", 0), stat.get("nr_throttled", 0)

    def remove(self) -> None:
        """Delete the cgroup once its processes have exited."""
        for _ in range(50):
            try:
                self.path.rmdir()
            except OSError:
                time.sleep(0.1)
            else:
                return


@contextmanager
def cpu_caps(quota: float, names: Sequence[str]) -> Iterator[dict[str, CpuCap]]:
    """One :class:`CpuCap` per server name; skip the benchmark when cgroups cannot be written."""
    caps: dict[str, CpuCap] = {}
    try:
        try:
            for name in names:
                caps[name] = CpuCap(f"interlock-tls-bench-{os.getpid()}-{name}", quota)
        except OSError as exc:
            skip(
                "tls",
                f"cannot cap the servers' CPU with a cgroup ({exc}); an unsaturated "
                "comparison would penalise nginx",
            )
        yield caps
    finally:
        for cap in caps.values():
            cap.remove()


def measure(box: Sandbox, args: argparse.Namespace) -> dict[tuple[str, str, str], list[Run]]:
    """Every (server, version, mode), ``--repeat`` times, alternating between the servers."""
    runs: dict[tuple[str, str, str], list[Run]] = {}
    with cpu_caps(args.quota, ["interlock", "nginx", "aiohttp"]) as caps, processes() as started:
        servers = [
            start_interlock(box, started),
            start_nginx(box, started),
            start_aiohttp(box, started),
        ]
        for server in servers:
            caps[server.name].add(server.pid)
            check(server, box.ca_file)
        cases = [(version, mode) for version in args.versions for mode in MODES]
        for server in servers:  # sessions caches, the interpreter's own warm-up
            for version, mode in cases:
                s_time(server, version, mode, WARM_UP_SECONDS, args.clients)
        for _ in range(args.repeat):
            for version, mode in cases:
                for server in servers:
                    before = caps[server.name].throttled()
                    run = s_time(server, version, mode, args.duration, args.clients)
                    after = caps[server.name].throttled()
                    periods, throttled = after[0] - before[0], after[1] - before[1]
                    share = throttled / periods if periods else 0.0
                    print(
                        f"{server.name} TLS {version} {mode}: out of quota in {share:.0%} of "
                        f"{periods} periods with work, {run.busy:.1%} of a core",
                        flush=True,
                    )
                    if share < SATURATED:
                        raise SystemExit(
                            f"{server.name} TLS {version} {mode}: not saturated (ran out of its "
                            f"{args.quota:.0%} quota in only {share:.0%} of {periods} periods "
                            "with work); lower --quota or raise --clients"
                        )
                    if mode == "resumed" and run.reuse < MIN_REUSED:
                        raise SystemExit(
                            f"{server.name} TLS {version}: only {run.reuse:.0%} of connections "
                            "resumed; refusing to report full handshakes as resumed"
                        )
                    runs.setdefault((server.name, version, mode), []).append(run)
    return runs


def per_cpu_second(runs: list[Run]) -> float:
    """The median of the runs' handshakes per server CPU-second: what the ratios compare."""
    return statistics.median(r.per_cpu_second for r in runs)


def report(runs: dict[tuple[str, str, str], list[Run]], args: argparse.Namespace) -> None:
    """The table; ratio lines per TLS version, then per mode (geometric mean over the versions)."""
    print(
        f"\nopenssl s_time, {args.clients} concurrent clients pinned to CPU {CLIENT_CPU}, one "
        f"HTTP/1.0 GET /healthz per connection; servers pinned to CPU {SERVER_CPU}, one process "
        f"each, each capped at {args.quota:.0%} of a core (cgroup); median of {args.repeat} runs of {args.duration}s (interleaved) after a "
        f"{WARM_UP_SECONDS}s warm-up; loopback"
    )
    print(
        f"{'server':<11}{'TLS':>4}{'handshake':>11}{'per s':>9}{'cpu':>6}{'per cpu-s':>11}"
        f"{'resumed':>9}{'client cpu':>12}  runs (per cpu-s)"
    )
    for (name, version, mode), measured in sorted(runs.items(), key=lambda item: item[0][1:]):
        rate = statistics.median(r.rate for r in measured)
        busy = statistics.median(r.busy for r in measured)
        client = statistics.median(r.client_busy for r in measured)
        resumed = f"{min(r.reuse for r in measured):.0%}" if mode == "resumed" else "-"
        each = ", ".join(f"{r.per_cpu_second:.0f}" for r in measured)
        print(
            f"{name:<11}{version:>4}{mode:>11}{rate:>9.0f}{busy:>6.0%}"
            f"{per_cpu_second(measured):>11.0f}{resumed:>9}{client:>12.0%}  {each}"
        )
    print()
    overall: dict[str, float] = {}
    peer = f"{nginx_version()} 1 worker, Mozilla intermediate, same {args.quota:.0%} CPU cap"
    for mode in MODES:
        ratios = []
        for version in args.versions:
            ours = per_cpu_second(runs[("interlock", version, mode)])
            theirs = per_cpu_second(runs[("nginx", version, mode)])
            ratios.append(ours / theirs)
            report_figure(
                "tls",
                f"{mode}-handshakes-vs-nginx-tls{version}",
                ratios[-1],
                target=None,
                peer=peer,
                note="handshakes per server CPU-second, both saturated",
            )
        overall[mode] = statistics.geometric_mean(ratios)
    for mode in MODES:  # where the gap lies: Interlock over its stack, the stack against nginx
        for name, ours_name, theirs_name, peer_name, note in (
            (
                f"{mode}-handshakes-vs-aiohttp",
                "interlock",
                "aiohttp",
                "aiohttp + uvloop alone with Interlock's TLS context (aiohttp_server.py)",
                "Interlock's own work per connection over the stack it runs on",
            ),
            (
                f"{mode}-handshakes-aiohttp-vs-nginx",
                "aiohttp",
                "nginx",
                peer,
                "the Python stack's ceiling: any aiohttp server, nothing of Interlock",
            ),
        ):
            report_figure(
                "tls",
                name,
                statistics.geometric_mean(
                    per_cpu_second(runs[(ours_name, version, mode)])
                    / per_cpu_second(runs[(theirs_name, version, mode)])
                    for version in args.versions
                ),
                target=None,
                peer=peer_name,
                note=f"{note}; geometric mean over TLS {', '.join(args.versions)}",
            )
    for mode, ratio in overall.items():
        report_figure(
            "tls",
            f"{mode}-handshakes-vs-nginx",
            ratio,
            target=TARGET,
            peer=peer,
            note="geometric mean over TLS "
            + ", ".join(args.versions)
            + "; handshakes per server CPU-second, both saturated",
        )


def nginx_version() -> str:
    """``nginx/1.22.1`` as ``nginx -v`` prints it."""
    out = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=True).stderr
    return out.strip().removeprefix("nginx version: ")


def versions() -> str:
    """What was measured."""
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=True).stderr
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True, check=True)
    return (
        f"Python {platform.python_version()} (ssl: {ssl.OPENSSL_VERSION}); {nginx.strip()}; "
        f"s_time: {openssl.stdout.strip()}; {os.cpu_count()} CPUs"
    )


def main() -> None:
    """Set up, measure, print."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median kept)")
    parser.add_argument("--clients", type=int, default=48, help="concurrent s_time processes")
    parser.add_argument(
        "--quota", type=float, default=0.05, help="each server's CPU cap, share of one core"
    )
    parser.add_argument(
        "--versions", nargs="+", choices=list(S_TIME_VERSION), default=["1.2", "1.3"]
    )
    args = parser.parse_args()
    ensure_tools("nginx")
    print(versions())
    with sandbox("interlock-tls-bench-") as box:
        runs = measure(box, args)
    report(runs, args)


if __name__ == "__main__":
    main()
