"""A mistyped name from the manifest or the store: one line that names the close match.

Every command runs against one deployment made with the example manifest (a
secret, a vault grant, an API key, a certificate and a privacy request in
the store); the validator's located messages and the vault's HTTP face, which
must not name a secret the caller may not list, are tested below them.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest
from aiohttp.test_utils import make_mocked_request

from interlock.actors import Operator
from interlock.audit.sink import MemorySink
from interlock.cli.main import main
from interlock.config.settings import Settings
from interlock.errors import NotFoundError, Refusal
from interlock.gateway.vault_api import VaultApi
from interlock.identity.grants import Principal
from interlock.secrets.vault import Vault
from interlock.store import initialise
from tests.conftest import isolate_cli
from tests.databases.conftest import manifest_text as database_manifest
from tests.events.test_registry import MANIFEST as EVENTS_MANIFEST
from tests.files.quarantine_support import _MANIFEST as FILES_MANIFEST

EXAMPLE = Path(__file__).parents[2] / "examples" / "interlock.yaml"


@dataclass(frozen=True)
class Stored:
    """The deployment's manifest and what its store holds, by the names a test mistypes."""

    manifest: Path
    key_id: str
    serial: str
    request_id: str
    secret_id: str
    keyid: str


def _typo(name: str) -> str:
    """``name`` with its last character changed to another digit (serials are hexadecimal)."""
    return name[:-1] + ("0" if name[-1] != "0" else "1")


def _output(monkeypatch: pytest.MonkeyPatch, stream: str, *argv: str) -> str:
    """What ``interlock ARGV`` wrote to ``stream`` (stdout or stderr); it must succeed."""
    captured = io.StringIO()
    with monkeypatch.context() as patch:
        patch.setattr(sys, stream, captured)
        assert main(list(argv)) == 0, captured.getvalue()
    return captured.getvalue()


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    """One deployment for every case: the example manifest and a few things stored."""
    tmp_path = tmp_path_factory.mktemp("names")
    manifest = tmp_path / "interlock.yaml"
    shutil.copy(EXAMPLE, manifest)
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate_cli(monkeypatch, tmp_path, MANIFEST=str(manifest), AUDIT_TIMEOUT_SECONDS="30")
        _output(monkeypatch, "stdout", "init")
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"erp-token")))
        _output(monkeypatch, "stdout", "secrets", "put", "erp/api-key")
        _output(monkeypatch, "stdout", "secrets", "grant", "order-sync", "erp/*")
        told = _output(monkeypatch, "stderr", "keys", "create", "analytics-feed")
        key_id = next(line.split()[-1] for line in told.splitlines() if "key id" in line)
        out = tmp_path / "certs"
        out.mkdir()
        told = _output(
            monkeypatch, "stdout", "pki", "issue", "client", "order-sync", "--out", str(out)
        )
        serial = told.split("issued client certificate ", 1)[1].split()[0]
        told = _output(
            monkeypatch,
            "stdout",
            "privacy",
            "request",
            "access",
            "ada@example.com",
            "-k",
            "email",
            "--system",
            "erp",
            "--json",
        )
        request_id = json.loads(told)["id"]
        told = _output(monkeypatch, "stderr", "clients", "create-secret", "order-sync")
        secret_id = told.split("secret id ", 1)[1].split()[0]
        told = _output(monkeypatch, "stderr", "signature-keys", "create", "order-sync", "--hmac")
        keyid = told.split("HMAC-SHA256 key ", 1)[1].split()[0]
        yield Stored(manifest, key_id, serial, request_id, secret_id, keyid)


def _cases() -> list[tuple[list[str], str]]:
    """(argv, the close match the error must name); ``{key}`` etc. are filled per deployment."""
    no_client = "no client 'ordr-sync' in the manifest; did you mean 'order-sync'?"
    return [
        (["clients", "list", "ordr-sync"], no_client),
        (["clients", "revoke", "ordr-sync"], "did you mean 'order-sync'?"),
        (["clients", "create-secret", "ordr-sync"], no_client),
        (["oauth", "token", "ordr-sync"], no_client),
        (["oauth", "token", "order-sync", "--scope", "order.read"], "did you mean 'orders.read'?"),
        (["keys", "create", "analytics-fed"], "did you mean 'analytics-feed'?"),
        (
            ["keys", "create", "analytics-feed", "--scope", "sale.read"],
            "is not granted sale.read; did you mean 'sales.read'?",
        ),
        (["keys", "list", "--client", "analytics-fed"], "did you mean 'analytics-feed'?"),
        (["keys", "revoke", "{key_typo}"], "no API key '{key_typo}'; did you mean '{key}'?"),
        (["signature-keys", "create", "ordr-sync", "--hmac"], no_client),
        (["signature-keys", "list", "ordr-sync"], no_client),
        (["pki", "issue", "client", "ordr-sync", "--out", "{out}"], no_client),
        (["pki", "revoke", "{serial_typo}"], "did you mean '{serial}'?"),
        (["secrets", "get", "erp/api-kee"], "no secret named 'erp/api-kee'; did you mean "),
        (["secrets", "show", "erp/api-kee"], "did you mean 'erp/api-key'?"),
        (["secrets", "rotate", "erp/api-kee"], "did you mean 'erp/api-key'?"),
        (["secrets", "delete", "erp/api-kee", "--version", "1"], "did you mean 'erp/api-key'?"),
        (["secrets", "grant", "ordr-sync", "erp/*"], no_client),
        (["secrets", "revoke-grant", "order-sync", "erp/x*"], "did you mean 'erp/*'?"),
        (["check", "--integration", "ordr-sync"], "did you mean 'order-sync'?"),
        (["messaging", "keys", "list", "order-event"], "did you mean 'order-events'?"),
        (["messaging", "plan", "order-event"], "did you mean 'order-events'?"),
        (["privacy", "trace", "ada@example.com", "--kind", "emial"], "did you mean 'email'?"),
        (
            ["privacy", "request", "access", "ada@example.com", "--kind", "emial"],
            "did you mean 'email'?",
        ),
        (
            ["privacy", "request", "access", "a@example.com", "-k", "email", "-s", "warehous"],
            "no system named 'warehous' in the manifest; did you mean 'warehouse'?",
        ),
        (["privacy", "request", "show", "{request_typo}"], "did you mean '{request}'?"),
        (
            [
                "privacy",
                "request",
                "confirm",
                "{request}",
                "erpp",
                "--status",
                "done",
                "--note",
                "n",
            ],
            "does not involve system 'erpp'; did you mean 'erp'?",
        ),
        (["clients", "revoke-secret", "{secret_typo}"], "did you mean '{secret}'?"),
        (
            ["signature-keys", "revoke", "{keyid_typo}"],
            "no signature key '{keyid_typo}'; did you mean '{keyid}'?",
        ),
        (["secrets", "get", "erp/api-kee", "--stage", "previous"], "did you mean 'erp/api-key'?"),
        (["import-openapi", "{spec}", "--system", "er"], "did you mean 'erp'?"),
    ]


@pytest.mark.parametrize(
    ("argv", "expected"), _cases(), ids=[" ".join(argv[:4]) for argv, _ in _cases()]
)
def test_a_mistyped_name_names_the_close_match(
    stored: Stored,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    expected: str,
) -> None:
    """Exit 2 or 1 (never a traceback) and one line naming what was probably meant."""
    spec = tmp_path / "openapi.yaml"
    spec.write_text('openapi: 3.1.0\ninfo: {title: t, version: "1"}\npaths: {}\n')
    values = {
        "key": stored.key_id,
        "serial": stored.serial,
        "request": stored.request_id,
        "secret": stored.secret_id,
        "keyid": stored.keyid,
        "out": str(tmp_path),
        "spec": str(spec),
    }
    for name in ("key", "serial", "request", "secret", "keyid"):
        values[f"{name}_typo"] = _typo(values[name])
    with pytest.MonkeyPatch.context() as patch:
        isolate_cli(
            patch, stored.manifest.parent, MANIFEST=str(stored.manifest), AUDIT_TIMEOUT_SECONDS="30"
        )
        status = main([a.format(**values) for a in argv])
    err = capsys.readouterr().err
    assert status != 0
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("interlock: error"), err
    assert expected.format(**values) in lines[0]


def _events_manifest() -> str:
    return EVENTS_MANIFEST


def _files_manifest() -> str:
    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    return FILES_MANIFEST.replace("KEY", key)


def _database_manifest() -> str:
    return database_manifest("postgresql", "127.0.0.1", 5432, "erp", "public", "p")


@pytest.mark.parametrize(
    ("manifest", "argv", "expected"),
    [
        (
            _events_manifest,
            ["events", "schemas", "register", "order.creatd", "{schema}"],
            "subject 'order.creatd' is not declared by the manifest; did you mean 'order.created'?",
        ),
        (
            _events_manifest,
            ["events", "schemas", "mode", "order.cancelld"],
            "did you mean 'order.cancelled'?",
        ),
        (_events_manifest, ["messaging", "plan", "order-strem"], "did you mean 'order-stream'?"),
        (
            _files_manifest,
            ["files", "quarantine", "nightly-order"],
            "integration 'nightly-order' has no files: section; did you mean 'nightly-orders'?",
        ),
        (
            _files_manifest,
            ["files", "transfer", "nightly-order"],
            "did you mean 'nightly-orders'?",
        ),
        (
            _database_manifest,
            ["db", "plan", "crm-customer"],
            "integrations.crm-customer: no such integration; did you mean 'crm-customers'?",
        ),
    ],
    ids=[
        "events register",
        "events mode",
        "messaging plan",
        "files quarantine",
        "files transfer",
        "db plan",
    ],
)
def test_a_mistyped_name_of_events_files_and_databases(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    manifest: Callable[[], str],
    argv: list[str],
    expected: str,
) -> None:
    """Subjects, file and shared-database integrations: the same one line."""
    path = tmp_path / "interlock.yaml"
    path.write_text(manifest())
    schema = tmp_path / "schema.json"
    schema.write_text('{"type": "object"}')
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate_cli(monkeypatch, tmp_path, MANIFEST=str(path), AUDIT_TIMEOUT_SECONDS="30")
        assert main(["init"]) == 0
        capsys.readouterr()
        status = main([a.format(schema=schema) for a in argv])
    err = capsys.readouterr().err
    assert status != 0
    assert len(err.splitlines()) == 1, err
    assert expected in err


# Where the example names order-sync's client: the located error must point at it.
_ORDER_SYNC_CLIENT_LINE = EXAMPLE.read_text().splitlines().index("    client: order-sync") + 1


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "    client: order-sync\n",
            "    client: ordr-sync\n",
            f":{_ORDER_SYNC_CLIENT_LINE}:13: integrations.order-sync.client: "
            "unknown client 'ordr-sync'; "
            "did you mean 'order-sync'?",
        ),
        (
            "      broker: events\n",
            "      broker: event\n",
            "integrations.order-events.messaging.broker: unknown broker 'event'; "
            "did you mean 'events'?",
        ),
        (
            "consumers: [crm-events]",
            "consumers: [crm-event]",
            "integrations.order-events.messaging.consumers[0]: unknown client 'crm-event'; "
            "did you mean 'crm-events'?",
        ),
        (
            "{role: dead-letter-handler,",
            "{role: dead-letter-handlr,",
            "unknown role 'dead-letter-handlr'; did you mean 'dead-letter-handler'?",
        ),
        (
            "roles: [analytics-reader]",
            "roles: [analytic-reader]",
            "clients.analytics-feed.roles[0]: unknown role 'analytic-reader'; "
            "did you mean 'analytics-reader'?",
        ),
        (
            "        scope: sales.read\n",
            "        scope: sale.read\n",
            "unknown scope 'sale.read': no role grants it; did you mean 'sales.read'?",
        ),
        (
            "    target: warehouse\n",
            "    target: warehous\n",
            "integrations.analytics-feed.target: unknown system 'warehous'; "
            "did you mean 'warehouse'?",
        ),
        (
            "    client: order-sync\n",
            "    client: nobody-at-all\n",
            "unknown client 'nobody-at-all' (known: analytics-feed, crm-events, erp-events, "
            "order-sync, privacy-desk)",
        ),
    ],
)
def test_the_validator_names_the_close_match_at_the_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, expected: str
) -> None:
    """Located as before; the close match when there is one, else every declared name."""
    text = EXAMPLE.read_text()
    assert old in text
    path = tmp_path / "interlock.yaml"
    path.write_text(text.replace(old, new, 1))
    assert main(["validate", str(path)]) == 1
    printed = capsys.readouterr()
    errors = [line for line in (printed.out + printed.err).splitlines() if "unknown" in line]
    assert len(errors) == 1, errors
    assert errors[0].startswith(str(path)), errors
    assert expected in errors[0]
    assert "(known:" not in errors[0] or "did you mean" not in errors[0]


class _Authenticated:
    """Stands in for the gateway's authentication: every request is ``principal``."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    async def principal_of(self, request: object) -> Principal:
        return self.principal


def test_the_vault_api_suggests_only_names_the_client_may_list(tmp_path: Path) -> None:
    """/v1/secrets: a miss names no secret the caller's grants hide; the operator's CLI does.

    The client may read everything under partner/ but list only partner/public/;
    partner/api-token is one letter away from what it asks for, and stays unnamed.
    """
    deployment = initialise(Settings(data_dir=tmp_path / "data"))
    try:
        vault = Vault(deployment.engine, deployment.keyring, cache_seconds=0, audit=MemorySink())
        admin = Operator("admin:test")
        vault.write("partner/api-token", b"hidden", actor=admin)
        vault.write("partner/public/api-token", b"listed", actor=admin)
        vault.policy.grant("app", "partner/**", ["read"])
        vault.policy.grant("app", "partner/public/*", ["list"])
        principal = Principal("app", frozenset({"vault.read"}), "test", method="mtls")
        api = VaultApi(vault)

        def refusal(name: str) -> Refusal:
            request = make_mocked_request("GET", f"/v1/secrets/{name}")
            with pytest.raises(Refusal) as refused:
                asyncio.run(api.handle(request, _Authenticated(principal)))  # type: ignore[arg-type]
            return refused.value

        hidden = refusal("partner/api-tokem")
        assert hidden.code == "not-found"
        assert hidden.detail.startswith("no secret named 'partner/api-tokem'")
        assert "'partner/api-token'" not in hidden.detail
        listed = refusal("partner/public/api-tokem")
        assert listed.detail == (
            "no secret named 'partner/public/api-tokem'; did you mean 'partner/public/api-token'?"
        )
        with pytest.raises(NotFoundError) as operator:
            vault.read("partner/api-tokem", actor=admin)
        assert operator.value.message.endswith("did you mean 'partner/api-token'?")
    finally:
        deployment.close()
