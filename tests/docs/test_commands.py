"""Every command in README.md and docs/*.md runs, as written, and exits as documented.

How it works (tests/docs/): each document's fenced ``sh``/``shell``/``bash``/
``console`` blocks are read in order (blocks.py) and run in one fresh working
directory per document (runner.py): ``interlock.yaml`` is examples/interlock.yaml
with the addresses in ``SITE`` pointed at this machine, ``INTERLOCK_DATA_DIR`` is
fresh, ``interlock init`` runs first unless the document starts with it, the
files a reader is assumed to have (``INPUTS``) are there, and the sample ERP
serves once the deployment exists. A line's exit status must be 0, or one its
trailing comment documents ("exits 1 when ...", "exits 3 on drift").

To extend it:

* a new document needs nothing: docs/*.md is globbed;
* a new placeholder (a word in CAPS standing for a value from an earlier
  command) is one entry in ``PLACEHOLDERS``: its name and how to find the value;
* ``$NAME`` variables come from ``VARIABLES`` (and ``export`` lines);
* a file the reader brings (``key.jwk``, ``crm.yaml``) is one entry in ``INPUTS``;
* a line that cannot run in a test is one entry in ``EXCLUDED``, with the reason.
  Keep that table short: a failing line is a bug in the docs, the example or the code.
  A command written outside a shell fence is not run at all: test_fences.py fails on
  one unless it is a synopsis (``[--json]``, ``SUBJECT``) in a ``text`` fence.

``interlock serve`` runs in the background (the next ``serve`` replaces it) on
the test's own port (``SITE``); the commands after it use it. The example's
RabbitMQ is a node of this machine's, started at the first ``interlock
messaging`` line; a partner's SFTP host is this machine's ``sshd`` (sites.py);
``interlock demo --edge`` runs this machine's nginx (docs/edge.md: ``OWN_DEPLOYMENT``);
docs/databases.md's ``erp-db`` is a fresh database on the test PostgreSQL, declared
in the manifest as that document declares it (``_ErpDb``).
The reader is the example's operator (``operators: ops``), named as this
machine's user in the manifest the commands run with.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Final

import psycopg
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc.jwk import ECKey
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from interlock.config.loader import load_manifest
from interlock.databases.plan import plan_for
from interlock.testing import rabbitmq_node
from interlock.testing.services import POSTGRES
from interlock.testing.softhsm import SoftHsm
from interlock.testing.tls import make_tls
from tests.conftest import _available, need
from tests.docs.blocks import Command, commands, documents
from tests.docs.runner import Forks, Outcome, Session, forks, free_port, session
from tests.docs.shell import Step, UnsupportedShellError
from tests.docs.sites import SSHD, Broker, sshd
from tests.gateway.edge.conftest import nginx_or_skip

REPO: Final = Path(__file__).resolve().parents[2]
EXAMPLE: Final = REPO / "examples" / "interlock.yaml"

#: Lines that do not run here, by document and a pattern of the command. Each has its reason.
EXCLUDED: Final[dict[tuple[str, str], str]] = {
    ("README.md", r"^make "): "make targets build environments and run the suites: CI runs them",
    ("docs/edge.md", r"^make "): "make demo-edge is the next line's demo, run there",
    **{
        ("docs/files.md", rf"^interlock files {command}\b"): (
            "needs file integrations (SFTP and AS2 partners), which the example manifest has "
            "not: tests/files/ runs them (test_transfers.py, test_as2_cli.py, test_drop_server.py)"
        )
        for command in ("transfer", "run", "drop-server", "quarantine")
    },
}


def _last(pattern: str) -> Callable[[Session], str]:
    """The last match of ``pattern`` (its group 1) in the output of the commands so far."""

    def find(run: Session) -> str:
        for outcome in reversed(run.outcomes):
            found = re.findall(pattern, outcome.stdout + outcome.stderr)
            if found:
                return str(found[-1])
        raise LookupError(f"no earlier command printed {pattern!r}")

    return find


def _serial(run: Session) -> str:
    """The serial of the last active certificate the document issued (``pki list --json``)."""
    listed = json.loads(run.interlock("pki", "list", "--json").stdout)
    rows = next(iter(listed.values())) if isinstance(listed, dict) else listed
    ours = {_Erp.CERTIFICATE_NAME, Broker.CERTIFICATE_NAME}  # the test's, not the document's
    active = [r for r in rows if r["status"] == "active" and r["name"] not in ours]
    if not active:
        raise LookupError("no active certificate: the document issues none before SERIAL")
    return str(active[-1]["serial"])


#: What a document assumes the reader has done already (the README's steps), run first.
_SECRETS: Final = (
    'printf %s "$ERP_TOKEN" | interlock secrets put erp/api-key',
    'printf %s "$CRM_SECRET" | interlock secrets put crm/oauth-client',
    'printf %s "$WAREHOUSE_TOKEN" | interlock secrets put warehouse/ingest-token',
    'printf %s "$CRM_DATABASE_URL" | interlock secrets put crm/readonly-url',
)
PREPARE: Final[dict[str, tuple[str, ...]]] = {
    "docs/mtls.md": _SECRETS,
    "docs/privacy.md": (  # a closed request's receipt, as the README makes one
        *_SECRETS,
        "echo ada@example.com | interlock privacy request erase - --kind email",
        "interlock privacy request run --until-done",
        "interlock privacy request receipt REQUEST_ID --out receipt.json",
    ),
    "docs/check.md": (*_SECRETS, "interlock serve"),
    # The local CA's certificate (DATA_DIR/ca.pem, the sample ERP's trust anchor) is written
    # by `serve`; vault.md's own `secrets put` lines store the secrets.
    "docs/vault.md": ("INTERLOCK_MISSING_SECRETS=start interlock serve",),
    "docs/events.md": (  # the two versions the refused third one is checked against
        "interlock events schemas register order.created order-created-v1.json",
        "interlock events schemas register order.created order-created-v2.json",
    ),
}

#: Documents whose commands make their own deployment (``interlock demo``): no ``init``
#: first, no ``INTERLOCK_DATA_DIR`` (which the demo would take as the one to use).
OWN_DEPLOYMENT: Final = frozenset({"docs/edge.md"})

#: CAPS words standing for a value the reader copies from an earlier command.
PLACEHOLDERS: Final[dict[str, Callable[[Session], str]]] = {
    "KEY_ID": _last(r"\bilk_([A-Za-z0-9]+)_"),  # the id inside the last API key printed
    "SERIAL": _serial,
    "CLIENT": lambda _: "order-sync",  # the example's OAuth client
    "REQUEST_ID": _last(r"\b(dsr_[A-Za-z0-9_-]+)"),
    "INDEX": lambda _: "0",  # the audit trail's first entry
}

#: ``$NAME`` values (the runner adds ERP_TOKEN and TOKEN: the sample ERP's credential).
VARIABLES: Final[dict[str, Callable[[Session], str]]] = {
    "KEY": _last(r"\b(ilk_[A-Za-z0-9_]+)\b"),  # the last API key printed
    "CRM_SECRET": lambda _: "crm-client-secret-for-the-docs-test",
    "WAREHOUSE_TOKEN": lambda _: "warehouse-token-for-the-docs-test",
    "ROTATION_TOKEN": lambda _: "erp-rotation-endpoint-token-for-the-docs-test",
    # Unreachable like the docs' host, but on loopback: a remote one needs ?sslmode=verify-full,
    # and an unquoted "?" is not a value the runner passes on.
    "CRM_DATABASE_URL": lambda _: "postgresql://crm_reader@127.0.0.1:1/crm",
}

#: Addresses of the example manifest and the docs, and what they mean on this machine.
#: The gateway's documented port (8443) becomes a free one: tests run in parallel,
#: on a machine others use too (``serve`` without ``--listen`` gets ``--listen`` it).
SITE: Final = {
    "erp": "https://erp.internal.example:9443",  # the sample ERP (interlock.testing)
    "gateway": "127.0.0.1:8443",
    # A RabbitMQ node of this machine's on a free port (sites.Broker).
    "broker": "amqps://rabbitmq.integration.example-retail.internal:5671/",
    # This machine's sshd on a free port (sites.sshd): `trust-host HOST --port N`.
    "sftp": "sftp.partner.example",
}
#: The example's operator, who holds the dead-letter role. The CLI names its user
#: by the process's user id (never LOGNAME/USER), so the manifest the commands run
#: with names this machine's user in that place.
OPERATOR: Final = "ops"


def _softhsm_site(hsm: SoftHsm) -> tuple[dict[str, str], dict[str, str]]:
    token = "interlock-a"  # a token of the test run's SoftHSM2 (tests/conftest.py)
    environment = {
        "SOFTHSM2_CONF": os.environ["SOFTHSM2_CONF"],
        "INTERLOCK_AUDIT_TIMEOUT_SECONDS": "30",  # SoftHSM2 stores keys slowly on a busy machine
    }
    words = {
        "/usr/lib/softhsm/libsofthsm2.so": str(hsm.module),
        "/etc/interlock/hsm.pin": str(hsm.pin_file(token)),
        "INTERLOCK_PKCS11_TOKEN_LABEL=interlock": f"INTERLOCK_PKCS11_TOKEN_LABEL={token}",
    }
    return environment, words


#: Documents that need a service: its fixture, and what it means here: the session's extra
#: environment and the words of that document standing for this machine's. (The README's
#: RabbitMQ starts mid-document, once the deployment's CA exists: sites.Broker.)
SERVICES: Final[dict[str, tuple[str, Callable[[Any], tuple[dict[str, str], dict[str, str]]]]]] = {
    "docs/hsm.md": ("softhsm", _softhsm_site),
    "README.md": ("partner_sshd", lambda port: ({}, {SITE["sftp"]: f"127.0.0.1 --port {port}"})),
    "docs/edge.md": ("nginx", lambda _: ({}, {})),
    "docs/databases.md": ("erp_db", lambda _: ({}, {})),  # and its manifest, admin.json
    "docs/vault.md": (  # the ERP's rotation endpoint, and the CA that issued its certificate
        "erp",
        lambda erp: (
            {},
            {
                "https://erp.internal/": f"https://localhost:{erp.port}/",
                "/etc/interlock/erp-ca.pem": ".interlock/ca.pem",
            },
        ),
    ),
    "docs/files.md": (
        "partner_sshd",
        lambda port: ({}, {"sftp.acme.example": f"127.0.0.1 --port {port}"}),
    ),
}


def _inputs(folder: Path) -> dict[str, bytes]:
    """The files a reader is assumed to bring, made now (keys, a CA, documents)."""
    jwk = ECKey.generate_key("P-256", private=True)
    pem = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    partners = make_tls(folder / "partners", name="Partner CA")
    return {
        "key.jwk": json.dumps(jwk.as_dict(private=False)).encode(),
        "key.pem": pem,
        "partners-ca.pem": partners.ca_file.read_bytes(),
        "crm.yaml": CRM_OPENAPI.encode(),
        "token.txt": b"a-new-erp-token\n",
        "check-waivers.yaml": WAIVERS.encode(),
        "schema.json": ORDER_CREATED.encode(),
        "examples/interlock.yaml": EXAMPLE.read_bytes(),  # a checkout's, as `interlock demo` reads
        **{f"order-created-v{n}.json": schema.encode() for n, schema in ORDER_VERSIONS.items()},
    }


CRM_OPENAPI: Final = """\
openapi: 3.1.0
info: {title: CRM accounts, version: "2"}
servers: [{url: "https://example.my.crm-cloud.com"}]
components:
  securitySchemes:
    oauth:
      type: oauth2
      flows:
        clientCredentials:
          tokenUrl: https://example.my.crm-cloud.com/oauth/token
          scopes: {crm.accounts.write: attach orders to accounts}
paths:
  /api/v2/accounts/{accountId}/orders:
    post:
      operationId: attachOrder
      security: [{oauth: [crm.accounts.write]}]
      parameters:
        - name: accountId
          in: path
          required: true
          schema: {type: string, pattern: "^[A-Z0-9-]{3,32}$"}
      requestBody:
        content:
          application/json:
            schema:
              type: object
              required: [order_id]
              additionalProperties: false
              properties:
                order_id: {type: string, pattern: "^[0-9]{4,10}$"}
      responses: {"201": {description: attached}}
"""

ORDER_CREATED: Final = """\
{
  "type": "object",
  "required": ["order_id", "created_at", "region", "customer"],
  "properties": {
    "order_id": {"type": "string", "pattern": "^[0-9]{10}$"},
    "created_at": {"type": "string", "format": "date-time"},
    "region": {"type": "string", "enum": ["EU", "US"]},
    "total": {"type": "number", "minimum": 0},
    "customer": {
      "type": "object",
      "required": ["id"],
      "properties": {"id": {"type": "string"}, "email": {"type": "string", "format": "email"}}
    }
  }
}
"""


def _order_versions() -> dict[int, str]:
    """docs/events.md's order.created: 1, 2 (compatible: ``total`` widened), 3 (refused)."""
    first = json.loads(ORDER_CREATED)
    first["required"].remove("region")
    second = json.loads(json.dumps(first))
    del second["properties"]["total"]["minimum"]
    third = json.loads(json.dumps(second))
    third["required"].append("region")  # REQUIRED_ATTRIBUTE_ADDED
    third["properties"]["total"] = {"type": "integer"}  # TYPE_NARROWED
    return {n: json.dumps(v, indent=2) for n, v in enumerate((first, second, third), 1)}


ORDER_VERSIONS: Final = _order_versions()

# A waiver expires at most a year ahead (docs/check.md): three months from the run's day.
WAIVERS: Final = f"""\
waivers:
  - item: minimisation
    integration: analytics-feed
    reason: the warehouse API returns no personal fields; allow-list due in Q2
    owner: data-platform@example.com
    expires: {(datetime.now(UTC).date() + timedelta(days=90)).isoformat()}
"""


@dataclass
class _Erp:
    """The sample ERP, started once the deployment (and its local CA) exists."""

    CERTIFICATE_NAME: ClassVar[str] = "localhost"  # not one a document issues

    port: int
    process: subprocess.Popen[bytes] | None = None

    def start(self, run: Session, step: Step, outcome: Outcome) -> None:
        if self.process is not None or step.argv[1:] != ["init"] or outcome.status != 0:
            return
        folder = run.work.parent / "erp"
        issued = run.interlock(
            "pki", "issue", "server", self.CERTIFICATE_NAME, "127.0.0.1", "--out", str(folder)
        )
        if issued.status != 0:
            raise RuntimeError(f"the sample ERP's certificate: {issued.stderr}")
        tokens = folder / "tokens"
        tokens.write_text(run.variables["ERP_TOKEN"] + "\n")
        rotation = folder / "rotation-token"  # its webhook rotator endpoint's (docs/vault.md)
        rotation.write_text(run.variables["ROTATION_TOKEN"] + "\n")
        self._refresh_jwks(run)
        cert, key = (folder / f"{self.CERTIFICATE_NAME}{end}" for end in (".pem", ".key"))
        self.process = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-m",
                "interlock.testing.sample_erp",
                *("--cert", str(cert), "--key", str(key), "--token-file", str(tokens)),
                *("--port", str(self.port), "--jwks-file", str(folder / "jwks.json")),
                *("--rotation-token-file", str(rotation)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        if self.process.stdout is None or not self.process.stdout.readline().startswith(b"PORT"):
            raise RuntimeError("the sample ERP did not start")

    def before(self, run: Session, step: Step) -> None:
        """Interlock signs webhook calls with its current key: the ERP must know it."""
        if self.process is not None and step.argv[1:3] == ["privacy", "request"]:
            self._refresh_jwks(run)

    @staticmethod
    def _refresh_jwks(run: Session) -> None:
        run.interlock("oauth", "jwks", stdout=run.work.parent / "erp" / "jwks.json")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            if self.process.stdout is not None:
                self.process.stdout.close()


def _manifest(erp_port: int, broker_port: int) -> str:
    text = EXAMPLE.read_text(encoding="utf-8").replace(SITE["erp"], f"https://localhost:{erp_port}")
    operator = f"\noperators:\n  {OPERATOR}:\n"
    assert operator in text, f"{EXAMPLE} no longer names the operator {OPERATOR}"
    text = text.replace(operator, f"\noperators:\n  {pwd.getpwuid(os.geteuid()).pw_name}:\n")
    return text.replace(SITE["broker"], f"amqps://127.0.0.1:{broker_port}/")


def _excluded(command: Command) -> str | None:
    for (document, pattern), reason in EXCLUDED.items():
        if command.document == document and re.search(pattern, command.text):
            return reason
    return None


def _fill(text: str, run: Session, words: dict[str, str] | None = None) -> str:
    for word, meaning in (words or {}).items():
        text = text.replace(word, meaning)

    def value(match: re.Match[str]) -> str:
        word = match.group(0)
        return PLACEHOLDERS[word](run) if word in PLACEHOLDERS else word

    text = text.replace(SITE["gateway"], run.gateway)
    return re.sub(r"(?<![$\w-])[A-Z][A-Z_]{2,}(?![\w=-])", value, text)


def _set_variables(run: Session) -> None:
    for name, find in VARIABLES.items():
        with contextlib.suppress(LookupError):  # not printed yet: a line using it says so
            run.variables[name] = find(run)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Forks | None]:
    """One fork server for the documents a worker runs (its start-up is the CLI's import)."""
    with forks(tmp_path_factory.mktemp("forkserver")) as started:
        yield started


@pytest.fixture
def erp() -> Iterator[_Erp]:
    started = _Erp(free_port())
    yield started
    started.stop()


@pytest.fixture
def broker() -> Iterator[Broker]:
    """The example's RabbitMQ, started by the first ``interlock messaging`` line (if any)."""
    started = Broker()
    yield started
    started.stop()


@pytest.fixture
def partner_sshd(tmp_path: Path) -> Iterator[int]:
    """A partner's SFTP host: this machine's sshd, its port."""
    if not SSHD.exists():
        _available("OpenSSH's sshd is not installed (make sshd, or apt-get install openssh-server)")
    with sshd(tmp_path / "sshd") as port:
        yield port


@dataclass
class _ErpDb:
    """docs/databases.md's ``erp-db``: a fresh PostgreSQL database holding ``sales.customers``."""

    host: str
    port: int
    database: str
    user: str
    password: str

    def manifest(self, text: str) -> str:
        """``text`` with the document's ``erp-db`` and ``crm-customers`` (and client crm-sync).

        As declared in docs/databases.md, except where the server is: this one, on
        loopback, where ``tls: disable`` is allowed.
        """
        declared = yaml.safe_load(_yaml_block(REPO / "docs" / "databases.md", "databases:"))
        erp_db = declared["databases"]["erp-db"]
        erp_db.update(host=self.host, port=self.port, database=self.database, tls="disable")
        del erp_db["ca"]
        merged = yaml.safe_load(text)
        merged.setdefault("databases", {}).update(declared["databases"])
        merged["integrations"].update(declared["integrations"])
        merged["clients"]["crm-sync"] = {"auth": ["oauth2"]}
        return yaml.safe_dump(merged, sort_keys=False)


def _yaml_block(document: Path, first: str) -> str:
    """The ```yaml block of ``document`` whose first line is ``first``."""
    blocks = re.findall(r"^```yaml\n(.*?)^```", document.read_text(encoding="utf-8"), re.M | re.S)
    return str(next(b for b in blocks if b.startswith(first)))


@pytest.fixture
def erp_db(tmp_path: Path) -> Iterator[_ErpDb]:
    """A database of its own on the test PostgreSQL; it and the roles apply made, dropped after."""
    base = need(POSTGRES).replace("+psycopg", "")
    url = conninfo_to_dict(base)
    admin_db = str(url.get("dbname", "postgres"))
    found = _ErpDb(
        str(url.get("host", "127.0.0.1")),
        int(str(url.get("port", 5432))),
        f"docs_{os.urandom(6).hex()}",
        str(url.get("user", "postgres")),
        str(url.get("password", "")),
    )

    def connect(database: str) -> psycopg.Connection[Any]:
        return psycopg.connect(make_conninfo(base, dbname=database), autocommit=True)

    # The roles `db apply` makes (cluster-wide), named by the document's prefix: known first,
    # so a manifest the document broke fails here, before anything is made.
    manifest = tmp_path / "erp-db.yaml"
    manifest.write_text(found.manifest(EXAMPLE.read_text(encoding="utf-8")), encoding="utf-8")
    plan = plan_for(load_manifest(manifest), "crm-customers")
    roles = [plan.owner, *(n for c in plan.consumers for n in c.logins)]
    with connect(admin_db) as c:
        c.execute(f'CREATE DATABASE "{found.database}"')
    try:
        with connect(found.database) as c:
            c.execute("CREATE SCHEMA sales")
            c.execute(
                "CREATE TABLE sales.customers (id integer PRIMARY KEY, email text, country text)"
            )
            c.execute(
                "INSERT INTO sales.customers VALUES (1, 'anna@example.de', 'DE'), (2, 'b@x.fr', 'FR')"
            )
        yield found
    finally:
        with connect(found.database) as c:
            for role in roles:
                if c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                    c.execute(f'DROP OWNED BY "{role}" CASCADE')
        with connect(admin_db) as c:
            c.execute(f'DROP DATABASE "{found.database}" WITH (FORCE)')
            for role in roles:
                c.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
def nginx() -> str:
    """The nginx binary (``interlock demo --edge`` runs it)."""
    return nginx_or_skip()


def _needs_broker(document: str) -> bool:
    return any(c.text.startswith("interlock messaging ") for c in commands(REPO, document))


def _marks(document: str) -> list[pytest.MarkDecorator]:
    """The services ``document`` needs, as markers (``make fast`` deselects them)."""
    marks = [pytest.mark.rabbitmq] if _needs_broker(document) else []
    if SERVICES.get(document, ("",))[0] == "softhsm":
        marks.append(pytest.mark.softhsm)
    if SERVICES.get(document, ("",))[0] == "erp_db":
        marks.append(pytest.mark.postgres)
    return marks


@pytest.mark.processes
@pytest.mark.parametrize(
    "document",
    [pytest.param(d, marks=_marks(d)) for d in documents(REPO) if commands(REPO, d)],
)
def test_documented_commands_run_as_written(  # noqa: PLR0917  (pytest fixtures)
    document: str,
    tmp_path: Path,
    erp: _Erp,
    broker: Broker,
    server: Forks | None,
    request: pytest.FixtureRequest,
) -> None:
    """Each command of ``document`` exits 0 or as its comment says, in order, in one session."""
    lines = commands(REPO, document)
    runnable = [c for c in lines if _excluded(c) is None]
    if not runnable:
        pytest.skip(f"{document}: no commands to run")
    inputs = _inputs(tmp_path / "inputs")
    words: dict[str, str] = {}
    environment: dict[str, str] = {}
    manifest = _manifest(erp.port, broker.port)
    if document in SERVICES:
        fixture, site = SERVICES[document]
        service = request.getfixturevalue(fixture)
        environment, words = site(service)
        if isinstance(service, _ErpDb):
            manifest = service.manifest(manifest)
            admin = {"username": service.user, "password": service.password}
            inputs["admin.json"] = json.dumps(admin).encode()
    if _needs_broker(document):
        _available(rabbitmq_node.unavailable())
    with session(tmp_path, manifest, inputs, server) as run:
        run.env.update(environment)
        run.after.append(erp.start)
        run.before.append(erp.before)
        run.before.append(broker.before)
        _set_variables(run)
        if document in OWN_DEPLOYMENT:
            del run.env["INTERLOCK_DATA_DIR"]  # the demo's own, made and deleted by it
        elif not any(c.text == "interlock init" for c in runnable):
            init = run.interlock("init")
            erp.start(run, Step(["interlock", "init"]), init)
        for text in PREPARE.get(document, ()):
            prepared = run.run(Command(document, 0, text, ""), _fill(text, run))
            if not prepared[-1].ok:
                raise RuntimeError(f"{document}: preparing with {text}: {prepared[-1].stderr}")
        failures: list[str] = []
        for command in runnable:
            _set_variables(run)
            try:
                text = _fill(command.text, run, words)
                outcomes = run.run(command, text)
            except (LookupError, UnsupportedShellError) as exc:
                failures.append(f"{command.where}: {command.text}\n  {exc}")
                continue
            failures.extend(
                f"{command.where}: {text}\n  exit {outcome.status}: "
                f"{(outcome.stderr or outcome.stdout).strip()[-600:]}"
                for outcome in outcomes
                if not outcome.ok
            )
        assert not failures, "\n".join(failures)
