"""``interlock edge``: nginx carries the bytes, Interlock decides (docs/edge.md).

* ``edge nginx -o DIR`` writes a complete nginx configuration for the
  manifest into ``DIR`` (``nginx.conf``, the CA files it trusts, a listener
  certificate from the local CA unless ``--cert`` names one, and
  ``edge.json``, the options, for ``edge reload``);
* ``edge serve`` runs the gateway (for routes that need the body and for its
  own endpoints) and the decision endpoint on a unix socket; with
  ``INTERLOCK_WORKERS=N``, ``edge serve --worker K`` runs the K-th of N such
  processes (its own decision socket, the gateway's port shared), and ``edge
  nginx --decision-workers N`` spreads decisions over all N;
* ``edge reload -o DIR`` regenerates the configuration, checks it with
  ``nginx -t``, tells the decision processes listening on its decision
  sockets to reload their manifest (SIGHUP, as ``edge serve`` reloads), and
  only then tells nginx to reload; a configuration nginx refuses is put back
  as it was and nothing is signalled.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Final

import typer

from interlock.cli.context import settings
from interlock.cli.options import ManifestOption
from interlock.config.loader import load_manifest
from interlock.config.settings import Settings
from interlock.crypto.keyfile import write_private_file
from interlock.errors import ConfigError
from interlock.gateway.edge.decision import EdgeDecisions
from interlock.gateway.edge.listener import check_socket_path, listening_pid, start_decisions
from interlock.gateway.edge.nginx import NginxOptions, render_nginx
from interlock.gateway.edge.protocol import CONVENTIONS, MAX_DECISION_WORKERS, worker_socket
from interlock.gateway.server import ListenerConfig, run_event_loop, serve_forever, start_gateway
from interlock.limits.scope import check_scope
from interlock.pki import LOCAL_CA_NAME
from interlock.pki.authority import Pki
from interlock.store import open_deployment
from interlock.validation.artifacts import route_artifacts

__all__ = ["app"]

app = typer.Typer(
    help="Edge mode: nginx (or Envoy, Traefik, Caddy) carries the bytes, Interlock decides.",
    no_args_is_help=True,
)

_OPTIONS: Final = "edge.json"
_CONF: Final = "nginx.conf"
OutputOption = Annotated[Path, typer.Option("--output", "-o", help="Directory for nginx's files.")]


def _socket(current: Settings, given: Path | None) -> Path:
    return given or current.data_dir / "edge" / "authz.sock"


@app.command("nginx")
def nginx(  # noqa: PLR0917  (typer maps each parameter to an option)
    output: OutputOption,
    manifest: ManifestOption = None,
    listen: Annotated[str, typer.Option(help="HOST:PORT nginx listens on (TLS).")] = "0.0.0.0:443",
    server_name: Annotated[
        list[str] | None, typer.Option("--server-name", help="Host names nginx answers for.")
    ] = None,
    cert: Annotated[
        str, typer.Option(help="'auto' (issued by the local CA) or nginx's PEM certificate.")
    ] = "auto",
    key: Annotated[Path | None, typer.Option(help="PEM private key for --cert.")] = None,
    interlock: Annotated[
        str, typer.Option(help="HOST:PORT of Interlock's own listener (interlock edge serve).")
    ] = "127.0.0.1:8443",
    socket: Annotated[
        Path | None, typer.Option(help="The decision socket (default: DATA_DIR/edge/authz.sock).")
    ] = None,
    client_certificates: Annotated[
        bool, typer.Option(help="Ask for client certificates (mutual TLS) from Interlock's CA.")
    ] = True,
    crl: Annotated[
        Path | None,
        typer.Option(
            help="A CRL file covering every CA of the chain (nginx checks them all); "
            "write it again and reload nginx at least every 12 hours."
        ),
    ] = None,
    workers: Annotated[str, typer.Option(help="nginx worker_processes.")] = "auto",
    user: Annotated[str | None, typer.Option(help="The user nginx's workers run as.")] = None,
    decision_workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_DECISION_WORKERS,
            help="Decision processes (edge serve --worker 1..N) to spread decisions over.",
        ),
    ] = 1,
) -> None:
    """Write an nginx configuration for the manifest into DIR (no secret is written)."""
    current = settings()
    manifest_path = manifest or current.manifest
    load_manifest(manifest_path, route_artifacts)  # a bad manifest stops here, nothing written
    output.mkdir(parents=True, exist_ok=True)
    ca_file, certificate, private_key = _pki_files(current, output, cert, key, server_name)
    options = NginxOptions(
        listen=listen,
        certificate=certificate,
        private_key=private_key,
        decision_socket=_socket(current, socket),
        interlock=interlock,
        interlock_ca=ca_file,
        prefix=output.resolve(),
        anchors={f"pki:{LOCAL_CA_NAME}": ca_file},
        server_names=tuple(server_name or ["_"]),
        client_ca=ca_file if client_certificates else None,
        client_crl=crl,
        workers=workers,
        user=user,
        decision_workers=decision_workers,
    )
    _write(output, manifest_path, options)
    typer.echo(f"nginx configuration written to {output / _CONF}")


def _pki_files(
    current: Settings, output: Path, cert: str, key: Path | None, names: list[str] | None
) -> tuple[Path, Path, Path]:
    """Interlock's CA (trusted for upstreams, its listener, client certificates), nginx's own."""
    if (cert == "auto") != (key is None):
        raise ConfigError("--cert PATH needs --key PATH (and --cert auto takes no --key)")
    deployment = open_deployment(current)
    try:
        pki = Pki(
            deployment.engine,
            deployment.keyring,
            deployment.deployment_id,
            current.trust_domain,
        )
        pki.ensure()
        ca_file = output / "interlock-ca.pem"
        ca_file.write_bytes(pki.root_certificate_pem())
        if cert != "auto" and key is not None:
            return ca_file.resolve(), Path(cert).resolve(), key.resolve()
        hosts = [n for n in (names or []) if n != "_"] or ["localhost", "127.0.0.1"]
        issued = pki.issue_server(hosts)
        (output / "server.pem").write_bytes(issued.certificate_pem)
        server_key = output / "server.key"
        server_key.unlink(missing_ok=True)
        write_private_file(server_key, issued.private_key_pem)
        return ca_file.resolve(), (output / "server.pem").resolve(), server_key.resolve()
    finally:
        deployment.close()


def _write(output: Path, manifest_path: Path, options: NginxOptions) -> None:
    """The configuration and its options, each replaced whole (never half-written)."""
    manifest = load_manifest(manifest_path, route_artifacts)
    text = render_nginx(manifest, options)
    for kind in ("client_body", "proxy"):
        (output / "tmp" / kind).mkdir(parents=True, exist_ok=True)
    saved = {
        **{k: str(v) for k, v in asdict(options).items() if isinstance(v, Path)},
        "listen": options.listen,
        "interlock": options.interlock,
        "server_names": list(options.server_names),
        "workers": options.workers,
        "user": options.user,
        "decision_workers": options.decision_workers,
        "manifest": str(manifest_path.resolve()),
    }
    for name, content in ((_CONF, text), (_OPTIONS, json.dumps(saved, indent=2))):
        staged = output / f".{name}.new"
        staged.write_text(content)
        staged.replace(output / name)


@app.command("reload")
def reload(output: OutputOption) -> None:
    """Regenerate DIR's configuration from the manifest, check it (nginx -t), reload nginx."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    options, manifest_path = _saved_options(output / _OPTIONS)
    conf = output / _CONF
    previous = conf.read_text() if conf.exists() else None
    _write(output, manifest_path, options)
    control = [binary, "-p", str(options.prefix), "-c", str(conf.resolve())]
    checked = subprocess.run([*control, "-t"], capture_output=True, text=True, check=False)  # noqa: S603
    if checked.returncode != 0:
        if previous is not None:
            conf.write_text(previous)
        raise ConfigError(
            f"nginx -t refused the new configuration: {checked.stderr.strip()[-500:]}"
        )
    # The decisions first: they take longer to reload (a gateway is assembled). Until
    # both have, a route they disagree on is refused 503 (X-Interlock-Route), never sent on.
    told, missed = _reload_decisions(options)
    reloaded = subprocess.run(  # noqa: S603  (fixed arguments)
        [*control, "-s", "reload"], capture_output=True, text=True, check=False
    )
    if reloaded.returncode != 0:
        raise ConfigError(f"nginx did not reload: {reloaded.stderr.strip()[-500:]}")
    typer.echo(
        f"nginx configuration checked and reloaded; {told} decision process(es) "
        "told to reload the manifest (SIGHUP)"
    )
    if missed:
        raise ConfigError(
            f"decision process(es) not told to reload: {'; '.join(missed)}. They enforce "
            "the manifest they last loaded until they get SIGHUP; routes they and nginx "
            "disagree on are refused (503 route-unavailable) until then"
        )


def _reload_decisions(options: NginxOptions) -> tuple[int, list[str]]:
    """SIGHUP the process listening on each decision socket; how many, and which were not."""
    told = 0
    missed: list[str] = []
    for worker in range(1, options.decision_workers + 1):
        path = worker_socket(options.decision_socket, worker)
        try:
            pid = listening_pid(path)
            os.kill(pid, signal.SIGHUP)
        except OSError as exc:
            missed.append(f"{path}: {exc.strerror or exc}")
            continue
        told += 1
    return told, missed


def _saved_options(path: Path) -> tuple[NginxOptions, Path]:
    """The options ``edge nginx`` saved in ``path`` and the manifest's path; one clear error."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        raise ConfigError(f"{path}: missing or unreadable; run interlock edge nginx") from None
    if not isinstance(saved, dict):
        raise ConfigError(f"{path}: not the options edge nginx writes; run interlock edge nginx")
    try:
        ca_file = Path(saved["interlock_ca"])
        options = NginxOptions(
            listen=saved["listen"],
            certificate=Path(saved["certificate"]),
            private_key=Path(saved["private_key"]),
            decision_socket=Path(saved["decision_socket"]),
            interlock=saved["interlock"],
            interlock_ca=ca_file,
            prefix=Path(saved["prefix"]),
            anchors={f"pki:{LOCAL_CA_NAME}": ca_file},
            server_names=tuple(saved["server_names"]),
            client_ca=Path(saved["client_ca"]) if "client_ca" in saved else None,
            client_crl=Path(saved["client_crl"]) if "client_crl" in saved else None,
            workers=saved["workers"],
            user=saved["user"],
            decision_workers=_saved_workers(saved, path),
        )
        return options, Path(saved["manifest"])
    except KeyError as exc:
        raise ConfigError(f"{path}: no {exc.args[0]!r}; run interlock edge nginx again") from None
    except TypeError:  # a value of another shape (a number for a path, ...)
        raise ConfigError(
            f"{path}: a value has the wrong type; run interlock edge nginx again"
        ) from None


def _saved_workers(saved: dict[str, object], path: Path) -> int:
    """``decision_workers`` of a saved ``edge.json`` (1 when written before it existed)."""
    value = saved.get("decision_workers", 1)
    if type(value) is not int or not 1 <= value <= MAX_DECISION_WORKERS:
        raise ConfigError(
            f"{path}: decision_workers must be a whole number from 1 to {MAX_DECISION_WORKERS}, "
            f"got {value!r}; run interlock edge nginx again"
        )
    return value


@app.command("serve")
def serve(  # noqa: PLR0917  (typer maps each parameter to an option)
    manifest: ManifestOption = None,
    listen: Annotated[
        str, typer.Option(help="HOST:PORT of Interlock's own listener (body routes, endpoints).")
    ] = "127.0.0.1:8443",
    socket: Annotated[
        Path | None, typer.Option(help="The decision socket (default: DATA_DIR/edge/authz.sock).")
    ] = None,
    proxy_user: Annotated[
        str, typer.Option(help="The user the proxy's workers run as (may ask for decisions).")
    ] = "www-data",
    proxy: Annotated[str, typer.Option(help="nginx, envoy, traefik or caddy.")] = "nginx",
    worker: Annotated[
        int,
        typer.Option(
            help=(
                "This process's number, 1 to INTERLOCK_WORKERS: its decision socket is "
                "numbered after --socket, and the workers share --listen's port."
            )
        ),
    ] = 1,
) -> None:
    """Serve the gateway and the decision endpoint for a proxy in front of it."""
    current = settings()
    if not 1 <= worker <= current.workers:
        raise ConfigError(
            f"--worker {worker}: workers are numbered 1 to INTERLOCK_WORKERS "
            f"({current.workers}); set INTERLOCK_WORKERS to the number of edge serve processes"
        )
    # Several workers without Redis: refused before anything is issued or bound.
    check_scope(current, reuse_port=current.workers > 1)
    manifest_path = manifest or current.manifest
    loaded = load_manifest(manifest_path, route_artifacts)
    if proxy not in CONVENTIONS:
        raise ConfigError(f"--proxy must be one of {', '.join(CONVENTIONS)}, got {proxy!r}")
    try:
        uid = pwd.getpwnam(proxy_user).pw_uid
    except KeyError:
        raise ConfigError(f"--proxy-user {proxy_user!r} is not a user on this machine") from None
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--listen must be HOST:PORT, got {listen!r}")
    path = worker_socket(_socket(current, socket), worker)
    check_socket_path(path)  # before anything is issued or bound; again when it listens
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    listener = ListenerConfig(
        host=host,
        port=int(port),
        client_auth="optional",
        metrics=current.metrics_address,
        # Several workers: one port for the gateway's own listener; limits are divided or
        # shared where they are built (INTERLOCK_WORKERS, limits.scope), else refused.
        reuse_port=current.workers > 1,
    )
    convention = CONVENTIONS[proxy]
    deployment = open_deployment(current)

    async def run() -> None:
        running = await start_gateway(deployment, loaded, listener, manifest_path)
        decisions = EdgeDecisions(
            lambda: running.front.current, convention, running.services.proxies
        )
        started = await start_decisions(decisions, path, {uid, os.getuid()})
        typer.echo(f"Interlock on https://{host}:{running.port}; decisions on unix:{path}")
        try:
            await serve_forever(running)
        finally:
            await started.stop()

    try:
        run_event_loop(run())
    finally:
        deployment.close()
