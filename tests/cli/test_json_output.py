"""``--json`` on every command that lists or shows something, and tables for people.

Each command's JSON is checked against its section in docs/cli.md both ways:
every documented field is printed with the documented type, and every printed
field is documented (so the documentation cannot drift from the output). The
commands run on real deployments: the store, the vault, the PKI, a NATS server
and a MariaDB server where the command needs one.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import typer.main
from joserfc.jwk import ECKey, OKPKey

from interlock.cli import output
from interlock.cli.context import make_console
from interlock.cli.main import app, main
from interlock.databases import mariadb
from interlock.files.host_keys import fingerprint
from interlock.messaging.consumer import Message, MessageRejected
from interlock.services.messaging import consumer, producer
from tests.cli.test_files_cli import ORDERS, partner
from tests.cli.test_messaging_cli import deployment_and_broker
from tests.conftest import isolate_cli
from tests.databases.conftest import INTEGRATION, Shared, maria
from tests.events.test_registry import MANIFEST as EVENTS_MANIFEST
from tests.files.sftp_support import Keys, public_line
from tests.privacy.request_support import MANIFEST as PRIVACY_MANIFEST

__all__ = ["deployment_and_broker", "maria", "partner"]

DOCS: Final = Path(__file__).resolve().parents[2] / "docs" / "cli.md"

MANIFEST: Final = """\
version: 1
systems:
  erp: {url: "https://erp.internal", location: DE}
roles:
  reader: {scopes: [orders.read]}
clients:
  app: {auth: [oauth2, mtls], roles: [reader]}
  legacy: {auth: [api_key], roles: [reader]}
integrations:
  f:
    source: erp
    target: erp
    client: legacy
    purpose: test
    legal_basis: contract
    retention: 1d
    routes:
      - {method: GET, path: "/a", upstream: erp, scope: orders.read}
"""

#: Commands whose JSON is the same document as another command's (docs/cli.md says so).
SAME_AS: Final = {
    "interlock privacy request access": "interlock privacy request show",
    "interlock privacy request export": "interlock privacy request show",
    "interlock privacy request erase": "interlock privacy request show",
    "interlock privacy request rectify": "interlock privacy request show",
    "interlock messaging apply": "interlock messaging plan",
}


# -- docs/cli.md --------------------------------------------------------------


def documented() -> dict[str, dict[str, str]]:
    """``{"interlock keys list": {"keys[].id": "string", ...}}`` from docs/cli.md."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        if heading := re.fullmatch(r"### (interlock [a-z -]+?) --json", line):
            current = sections.setdefault(heading[1], {})
        elif line.startswith("#"):
            current = None
        elif current is not None and (row := re.fullmatch(r"\| `([^`]+)` \| ([^|]+) \|.*\|", line)):
            current[row[1]] = row[2].strip()
    return sections


_TYPES: Final[dict[str, type | tuple[type, ...]]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "object": dict,
    "array": list,
}


def matches(value: object, spec: str) -> bool:
    """Whether ``value`` has the documented type ``spec`` (``string or null``...)."""
    for option in spec.split(" or "):
        if option == "null":
            if value is None:
                return True
        elif option.startswith("array of "):
            if isinstance(value, list) and all(matches(v, option[9:]) for v in value):
                return True
        elif option not in _TYPES:
            raise AssertionError(f"docs/cli.md: unknown type {option!r}")
        elif isinstance(value, bool) and option in {"integer", "number"}:
            continue
        elif isinstance(value, _TYPES[option]):
            return True
    return False


def _walk(value: object, path: str, fields: dict[str, str], found: dict[str, set[str]]) -> None:
    if path in fields:  # a documented field: a leaf, or a container described elsewhere
        found["seen"].add(path)
        if not matches(value, fields[path]):
            found["problems"].add(f"{path}: {value!r} is not {fields[path]}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(item, f"{path}.{key}" if path else key, fields, found)
    elif isinstance(value, list):
        if not value:
            found["empty"].add(path)
        for item in value:
            _walk(item, f"{path}[]", fields, found)
    else:
        found["problems"].add(f"{path}: printed but not documented")


def check(command: str, *documents: Any) -> None:
    """The documents (one command's JSON) have exactly the fields docs/cli.md lists."""
    fields = documented().get(command)
    assert fields, f"docs/cli.md has no section '### {command} --json'"
    found: dict[str, set[str]] = {"seen": set(), "empty": set(), "problems": set()}
    for document in documents:
        _walk(document, "", fields, found)
    for path in fields:
        # A field inside a list that came out empty cannot be seen; every other must be.
        hidden = any(path.startswith(f"{empty}[]") for empty in found["empty"])
        if path not in found["seen"] and not hidden:
            found["problems"].add(f"{path}: documented but not printed")
    assert not found["problems"], f"{command}: " + "; ".join(sorted(found["problems"]))


def run(capsys: pytest.CaptureFixture[str], *args: str, status: int = 0) -> str:
    """``interlock ARGS``: its standard output, after checking its exit status."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == status, f"interlock {' '.join(args)}: exit {code}\n{err}"
    return out


def run_json(capsys: pytest.CaptureFixture[str], *args: str, status: int = 0) -> Any:
    """``interlock ARGS --json``, parsed."""
    return json.loads(run(capsys, *args, "--json", status=status))


def _json_commands(command: Any, name: str) -> Iterator[str]:
    if hasattr(command, "commands"):  # a group (typer's own copy of click's classes)
        for sub_name, sub in command.commands.items():
            yield from _json_commands(sub, f"{name} {sub_name}")
    elif any("--json" in getattr(param, "opts", ()) for param in command.params):
        yield name


def test_every_command_with_json_has_its_fields_documented() -> None:
    """A new --json without a docs/cli.md section fails here (and a section for nothing)."""
    commands = set(_json_commands(typer.main.get_command(app), "interlock"))
    sections = set(documented())
    assert commands - sections - set(SAME_AS) == set()
    assert {SAME_AS[c] for c in commands & set(SAME_AS)} <= sections
    assert sections - commands == set()
    for fields in documented().values():
        for spec in fields.values():
            matches(None, spec)  # every type named is one the checker knows


def test_the_checker_refuses_undocumented_missing_and_mistyped_fields() -> None:
    """The documentation check itself can fail."""
    good = {"keys": [{"id": "k", "client": "c", "scopes": ["s"], "status": "active"}]}
    doc = documented()["interlock keys list"]
    assert matches("2026-12-05T13:45:00Z", doc["keys[].created_at"])
    assert not matches(None, doc["keys[].created_at"])
    assert matches(None, doc["keys[].last_used_at"])
    assert not matches(True, "integer")
    assert not matches([1, "x"], "array of integer")
    with pytest.raises(AssertionError, match="documented but not printed"):
        check("interlock keys list", good)
    with pytest.raises(AssertionError, match="printed but not documented"):
        check("interlock secrets grants", {"grants": [{"client": "a", "secret": "x"}]})
    with pytest.raises(AssertionError, match="is not array of string"):
        check("interlock secrets grants", {"grants": [{"client": "a", "pattern": "p", "capabilities": "read"}]})  # fmt: skip


# -- one deployment with keys, secrets, clients, certificates -------------------


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A deployment holding one of everything the core commands list; the manifest."""
    tmp_path = tmp_path_factory.mktemp("core")
    with pytest.MonkeyPatch.context() as patch:
        isolate_cli(patch, tmp_path)
        path = tmp_path / "interlock.yaml"
        path.write_text(MANIFEST)
        patch.setenv("INTERLOCK_MANIFEST", str(path))
        m = ("-m", str(path))
        assert main(["init"]) == 0
        patch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"value-1")))
        assert main(["secrets", "put", "erp/api-key", "--kind", "api_key"]) == 0
        steps: list[list[str]] = [
            ["keys", "create", "legacy", "--scope", "orders.read", *m],
            ["secrets", "configure", "erp/api-key", "--max-age", "1s"],
            ["secrets", "grant", "app", "erp/*", "read", *m],
            ["pki", "issue", "client", "app", "--out", str(tmp_path)],
            ["clients", "create", "app", *m],
            ["clients", "create", "app", "--public-key", _jwk(tmp_path), *m],
            ["oauth", "rotate-keys"],
            ["signature-keys", "create", "legacy", "--public-key", _pem(tmp_path), *m],
        ]
        for step in steps:
            assert main(step) == 0, step
        time.sleep(1.1)  # erp/api-key is now past its maximum age (overdue)
        yield path


def _jwk(tmp_path: Path) -> str:
    path = tmp_path / "app.jwk"
    path.write_text(json.dumps(ECKey.generate_key("P-256", private=True).as_dict(private=False)))
    return str(path)


def _pem(tmp_path: Path) -> str:
    path = tmp_path / "partner.pub.pem"
    path.write_bytes(OKPKey.generate_key("Ed25519", private=True).as_pem(private=False))
    return str(path)


CORE: Final = [
    ("interlock keys list", ["keys", "list"], 0),
    ("interlock secrets list", ["secrets", "list"], 0),
    ("interlock secrets show", ["secrets", "show", "erp/api-key"], 0),
    ("interlock secrets get", ["secrets", "get", "erp/api-key"], 0),
    ("interlock secrets grants", ["secrets", "grants"], 0),
    ("interlock secrets overdue", ["secrets", "overdue"], 1),
    ("interlock clients list", ["clients", "list"], 0),
    ("interlock pki list", ["pki", "list"], 0),
    ("interlock oauth keys", ["oauth", "keys"], 0),
    ("interlock signature-keys list", ["signature-keys", "list"], 0),
]


@pytest.mark.parametrize(("command", "args", "status"), CORE, ids=[c[0][10:] for c in CORE])
def test_core_commands_print_their_documented_fields(
    core: Path, capsys: pytest.CaptureFixture[str], command: str, args: list[str], status: int
) -> None:
    """Each prints one JSON document with the fields docs/cli.md lists, of their types."""
    document = run_json(capsys, *args, status=status)
    check(command, document)
    listed = next(iter(document.values())) if len(document) == 1 else [document]
    assert listed, f"{command}: the deployment should give it something to list"


def test_json_is_what_the_store_holds(core: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The values, not only the names: the key, the certificate, the secret's versions."""
    (key,) = run_json(capsys, "keys", "list")["keys"]
    assert (key["client"], key["scopes"], key["status"]) == ("legacy", ["orders.read"], "active")
    assert key["created_at"].endswith("Z")
    (certificate,) = run_json(capsys, "pki", "list")["certificates"]
    assert certificate["identity"] == "spiffe://interlock.local/client/app"
    shown = run_json(capsys, "secrets", "show", "erp/api-key")
    assert [v["stage"] for v in shown["versions"]] == ["current"]
    # configure prints the object show does, without the versions (docs/cli.md says so).
    configured = json.loads(run(capsys, "secrets", "configure", "erp/api-key", "--owner", "ops"))
    assert "versions" not in configured
    check("interlock secrets show", configured | {"versions": []})
    assert configured["owner"] == "ops"
    states = sorted(k["state"] for k in run_json(capsys, "oauth", "keys")["keys"])
    assert states == ["active", "pending"]  # rotate-keys published a successor ahead


def test_secrets_get_json_names_the_version_never_the_value(
    core: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The version served, as ``secrets show`` lists it; --reveal and --json do not mix."""
    shown = run(capsys, "secrets", "get", "erp/api-key", "--json")
    document = json.loads(shown)
    assert [document[f] for f in ("name", "version", "stage")] == ["erp/api-key", 1, "current"]
    assert document["created_at"].endswith("Z")
    assert "value-1" not in shown
    capsys.readouterr()
    assert main(["secrets", "get", "erp/api-key", "--reveal", "--json"]) == 1
    out, err = capsys.readouterr()
    assert "value-1" not in out + err
    assert "--reveal" in err


# -- tables for people ----------------------------------------------------------


def _screen(monkeypatch: pytest.MonkeyPatch, **options: Any) -> io.StringIO:
    """The commands' console (as the CLI makes it) on an 80-column screen."""
    screen = io.StringIO()
    monkeypatch.setattr(output, "console", make_console(file=screen, width=80, **options))
    return screen


def test_an_80_column_terminal_shows_whole_identifiers(
    core: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Key ids, serials, SPIFFE ids and kids come out whole, on one line, no ellipsis."""
    (key,) = run_json(capsys, "keys", "list")["keys"]
    (certificate,) = run_json(capsys, "pki", "list")["certificates"]
    (signature,) = run_json(capsys, "signature-keys", "list")["keys"]
    (client,) = run_json(capsys, "clients", "list", "app")["clients"]
    kids = [k["kid"] for k in run_json(capsys, "oauth", "keys")["keys"]]
    wanted = {
        ("keys", "list"): [key["id"]],
        ("pki", "list"): [certificate["serial"], certificate["identity"]],
        ("signature-keys", "list"): [signature["keyid"]],
        ("clients", "list"): [client["keys"][0]["kid"], client["secrets"][0]["id"]],
        ("oauth", "keys"): kids,
    }
    for args, identifiers in wanted.items():
        screen = _screen(monkeypatch, force_terminal=True, color_system=None)
        run(capsys, *args)
        text = screen.getvalue()
        assert "…" not in text, args
        lines = text.splitlines()
        for identifier in identifiers:
            assert any(identifier in line for line in lines), (args, identifier, text)


def test_no_color_means_no_escape_sequences_even_on_a_terminal(
    core: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """NO_COLOR=1 wins over a terminal; without it the same table is coloured (control)."""
    for args in (("pki", "list"), ("keys", "list")):  # wider than 80 columns, and narrower
        screen = _screen(monkeypatch, force_terminal=True)
        run(capsys, *args)
        assert "\x1b[" in screen.getvalue()
        monkeypatch.setenv("NO_COLOR", "1")
        screen = _screen(monkeypatch, force_terminal=True)
        run(capsys, *args)
        assert "\x1b[" not in screen.getvalue()
        assert "\x1b[" not in capsys.readouterr().out
        monkeypatch.delenv("NO_COLOR")


def test_output_that_is_not_a_terminal_is_plain(
    core: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipe gets no escape sequences, and still every identifier whole."""
    screen = _screen(monkeypatch)  # a StringIO is not a terminal
    run(capsys, "pki", "list")
    (certificate,) = run_json(capsys, "pki", "list")["certificates"]
    assert "\x1b[" not in screen.getvalue()
    assert certificate["serial"] in screen.getvalue()


# -- privacy --------------------------------------------------------------------


def test_privacy_commands(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """drift, trace, and the data-subject requests (created, listed, shown)."""
    isolate_cli(monkeypatch, tmp_path)
    path = tmp_path / "interlock.yaml"
    path.write_text(PRIVACY_MANIFEST)
    m = ("-m", str(path))
    run(capsys, "init")
    created = run_json(
        capsys, "privacy", "request", "erase", "ada@example.com", "-k", "email", "-s", "billing", *m
    )
    check("interlock privacy request show", created)
    listed = run_json(capsys, "privacy", "request", "list", *m)
    check("interlock privacy request list", listed)
    assert [r["id"] for r in listed["requests"]] == [created["id"]]
    shown = run_json(capsys, "privacy", "request", "show", created["id"], *m)
    check("interlock privacy request show", shown)
    drift = run_json(capsys, "privacy", "drift", *m)
    check("interlock privacy drift", drift)
    same = json.loads(run(capsys, "privacy", "drift", "--format", "json", *m))
    assert (same["format"], same.keys()) == ("interlock-privacy-drift/1", drift.keys())
    trace = run_json(capsys, "privacy", "trace", "ada@example.com", *m)
    check("interlock privacy trace", trace)
    assert "ada@example.com" not in json.dumps(trace)


# -- events ---------------------------------------------------------------------


def test_events_schemas_list_and_diff(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The mode set and read, both shapes of list (subjects, one subject's versions), a diff."""
    isolate_cli(monkeypatch, tmp_path)
    path = tmp_path / "interlock.yaml"
    path.write_text(EVENTS_MANIFEST)
    m = ("--manifest", str(path))
    run(capsys, "init")
    changed = run_json(capsys, "events", "schemas", "mode", "order.created", "none", *m)
    again = run_json(capsys, "events", "schemas", "mode", "order.created", *m)
    check("interlock events schemas mode", changed, again)
    assert (changed["mode"], changed["changed"]) == ("NONE", True)
    assert (again["mode"], again["changed"]) == ("NONE", False)
    for name, extra in (("v1", {}), ("v2", {"n": {"type": "number"}})):
        schema = {
            "type": "object",
            "properties": {"id": {"type": "string"}, **extra},
            "required": ["id"],
            "additionalProperties": False,
        }
        file = tmp_path / f"{name}.json"
        file.write_text(json.dumps(schema))
        run(capsys, "events", "schemas", "register", "order.created", str(file), *m)
    subjects = run_json(capsys, "events", "schemas", "list", *m)
    versions = run_json(capsys, "events", "schemas", "list", "order.created", *m)
    check("interlock events schemas list", subjects, versions)
    assert [v["version"] for v in versions["versions"]] == [1, 2]
    diff = run_json(capsys, "events", "schemas", "diff", "order.created", "1", "2", *m)
    check("interlock events schemas diff", diff)
    assert diff["backward"] == []
    assert [p["pointer"] for p in diff["forward"]] == ["/properties/n"]


# -- files ----------------------------------------------------------------------


def test_files_trust_host(
    partner: tuple[Path, Keys, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Each offered key with its algorithm, fingerprint and the line to pin; nothing else."""
    path, keys, _ = partner
    port = path.read_text().split("port: ", 1)[1].split("\n", 1)[0]
    document = run_json(capsys, "files", "trust-host", "127.0.0.1", "--port", port)
    check("interlock files trust-host", document)
    line = public_line(keys.partner_host)
    offered = {"algorithm": line.split()[0], "fingerprint": fingerprint(line), "line": line}
    assert offered in document["host_keys"]


def test_files_quarantine(
    partner: tuple[Path, Keys, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """One file accepted, one refused with its reasons."""
    path, _, root = partner
    orders = root / "outbound" / "orders"
    (orders / "a.csv").write_bytes(ORDERS)
    (orders / "a.csv.sha256").write_text(hashlib.sha256(ORDERS).hexdigest() + "\n")
    (orders / "b.csv").write_bytes(ORDERS)
    run(capsys, "files", "transfer", "nightly-orders", "-m", str(path))
    listing = run_json(capsys, "files", "quarantine", "nightly-orders", "-m", str(path))
    check("interlock files quarantine", listing)
    assert listing["processing"] == ["a.csv"]


# -- messaging (a real NATS server) -------------------------------------------------


@pytest.mark.processes
@pytest.mark.nats
def test_messaging_commands(
    deployment_and_broker: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """keys list, plan and apply, and a refused message's dead letter listed and shown."""
    manifest = str(deployment_and_broker)
    m = ("-m", manifest)
    check("interlock messaging keys list", run_json(capsys, "messaging", "keys", "list", *m))
    check("interlock messaging plan", run_json(capsys, "messaging", "plan", *m))
    check("interlock messaging plan", run_json(capsys, "messaging", "apply", *m))
    refused = asyncio.Event()

    async def handle(message: Message) -> None:
        refused.set()
        raise MessageRejected("not an order")

    async def flow() -> None:
        async with producer("order-events", manifest=deployment_and_broker) as out:
            await out.publish({"id": "not-an-order"})
        async with consumer("order-events", "crm-events", manifest=deployment_and_broker) as inbox:
            running = await inbox.start(handle)
            await asyncio.wait_for(refused.wait(), 20)
            await running.stop()

    asyncio.run(flow())
    letters = run_json(capsys, "messaging", "dlq", "list", "order-events", *m)
    check("interlock messaging dlq list", letters)
    (letter,) = letters["dead_letters"]
    shown = run_json(capsys, "messaging", "dlq", "show", "order-events", letter["ref"], *m)
    check("interlock messaging dlq show", shown)
    assert shown["payload"] == {"id": "not-an-order"}


# -- shared databases (a real MariaDB server) ---------------------------------------


def test_db_audit_and_diff(
    maria: Shared,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A privilege beyond the plan, and a dropped column, as JSON."""
    isolate_cli(monkeypatch, tmp_path, AUDIT_TIMEOUT_SECONDS="30")
    run(capsys, "init")
    admin = {"username": maria.admin.username, "password": maria.admin.password.reveal().decode()}
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(json.dumps(admin).encode())))
    run(capsys, "secrets", "put", "db/shared-admin", "--kind", "database_password")
    m = ("-m", str(maria.path))
    run(capsys, "db", "apply", INTEGRATION, *m)
    check("interlock db audit", run_json(capsys, "db", "audit", *m))
    login = json.loads(run(capsys, "secrets", "get", "db/crm-customers/crm-sync", "--reveal"))
    with mariadb.connect(maria.plan, maria.admin) as connection, connection.cursor() as cursor:
        cursor.execute("GRANT SELECT ON *.* TO %s@'%%'", (login["username"],))
    report = run_json(capsys, "db", "audit", *m, status=1)
    check("interlock db audit", report)
    snap = tmp_path / "snapshot.json"
    run(capsys, "db", "snapshot", INTEGRATION, "-o", str(snap), *m)
    with mariadb.connect(maria.plan, maria.admin) as connection, connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE `{maria.source}`.`customers` DROP COLUMN email")
    changes = run_json(capsys, "db", "diff", INTEGRATION, "--snapshot", str(snap), *m, status=1)
    check("interlock db diff", changes)
    assert any(c["kind"] == "breaking" for c in changes["changes"])
