"""A corpus of planted secrets, insecure switches and their look-alikes, written at run time.

For the scanner's unit tests only: it was written together with the rules, so
it checks that they keep working, not how they do on real repositories (the
independent measurement is ``benchmarks/scan/run.py``, on data other projects
label). Every value is generated when the corpus is written (random tokens,
prefixes joined from pieces), so no secret and no token shape is stored in
the repository. Each case is one small file in one of several formats;
:class:`Case` records where a finding is expected (``kind`` ``"secret"`` or
``"switch"``) or that none is (``kind`` ``None``).
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from interlock.credentials.checks import with_github_checksum
from interlock.credentials.keyformat import CLIENT_SECRET_PREFIX, new_key

__all__ = ["Case", "Score", "lookalike_secrets", "planted_secrets", "score", "write_corpus"]

Expect = Literal["secret", "switch"] | None
_B62: Final = string.ascii_letters + string.digits
_B32: Final = string.ascii_uppercase + "234567"
_B64: Final = _B62 + "+/"
_URLSAFE: Final = _B62 + "-_"
_HEX: Final = "0123456789abcdef"
# Prefixes are joined from pieces so this file never holds a token shape.
_P: Final = {
    "aws": "AK" + "IA",
    "ghp": "gh" + "p_",
    "gho": "gh" + "o_",
    "ghs": "gh" + "s_",
    "pat": "github" + "_pat_",
    "glpat": "gl" + "pat-",
    "xoxb": "xo" + "xb-",
    "xoxp": "xo" + "xp-",
    "sk_live": "sk" + "_live_",
    "rk_live": "rk" + "_live_",
    "aiza": "AI" + "za",
    "sg": "S" + "G.",
    "twilio": "S" + "K",
    "npm": "np" + "m_",
    "pypi": "py" + "pi-" + "AgEIcHlwaS5vcmc",
    "pem_begin": "-----BEGIN " + "{} PRIVATE " + "KEY-----",
    "pem_end": "-----END " + "{} PRIVATE " + "KEY-----",
    "hook": "https://hooks." + "slack.com/services/",
    "sslmode": "sslmode=" + "disable",
}


@dataclass(frozen=True)
class Case:
    """One planted file: where a finding of ``kind`` is expected (``None``: no finding)."""

    path: str
    line: int
    kind: Expect
    label: str


@dataclass(frozen=True)
class Score:
    """Precision and recall of one scanner over the corpus."""

    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        """Share of reported findings that were planted."""
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        """Share of planted findings that were reported."""
        planted = self.true_positives + self.false_negatives
        return self.true_positives / planted if planted else 1.0


def score(cases: Iterable[Case], found: Iterable[tuple[str, int, str]]) -> Score:
    """Compare ``found`` (path, line, kind) with the planted cases; one hit per line counts once."""
    expected = {(c.path, c.line, c.kind) for c in cases if c.kind is not None}
    reported = set(found)
    return Score(len(expected & reported), len(reported - expected), len(expected - reported))


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - test data, reproducible on purpose

    def text(self, alphabet: str, length: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(length))

    def password(self) -> str:
        word = self.rng.choice(["Summer", "Blue", "Orbit", "Falcon", "River", "Quartz", "Nimbus"])
        return word + self.text(string.digits, 3) + self.rng.choice("!#%&*+?") + self.text(_B62, 4)

    def b64url(self, data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    def jwt(self, sub: str, alg: str = "HS256") -> str:
        head = self.b64url({"alg": alg, "typ": "JWT"})
        body = self.b64url({"sub": sub, "iat": self.rng.randrange(1_600_000_000, 1_800_000_000)})
        return f"{head}.{body}.{self.text(_URLSAFE, 43)}"

    def pem(self, kind: str) -> list[str]:
        label = f"{kind} " if kind else ""
        body = [self.text(_B64, 64) for _ in range(8)]
        begin = _P["pem_begin"].replace("{} ", label)
        return [begin, *body, _P["pem_end"].replace("{} ", label)]


def _secret_values(g: _Gen) -> list[tuple[str, str, str, str]]:
    """(label, rule id, field name, value) of planted secrets."""
    d = string.digits
    return [
        ("aws-key-id", "aws-access-key-id", "aws_access_key_id", _P["aws"] + g.text(_B32, 16)),
        ("aws-secret", "aws-secret-access-key", "aws_secret_access_key", g.text(_B64, 40)),
        (
            "github-ghp",
            "github-token",
            "upstream",
            with_github_checksum(_P["ghp"], g.text(_B62, 30)),
        ),
        ("github-gho", "github-token", "value", with_github_checksum(_P["gho"], g.text(_B62, 30))),
        ("github-ghs", "github-token", "ci", with_github_checksum(_P["ghs"], g.text(_B62, 30))),
        (
            "github-pat",
            "github-token",
            "github",
            _P["pat"] + g.text(_B62, 22) + "_" + g.text(_B62, 59),
        ),
        ("gitlab", "gitlab-token", "gitlab", _P["glpat"] + g.text(_URLSAFE, 20)),
        (
            "slack-bot",
            "slack-token",
            "slack",
            _P["xoxb"] + g.text(d, 11) + "-" + g.text(d, 13) + "-" + g.text(_B62, 24),
        ),
        (
            "slack-user",
            "slack-token",
            "notify",
            _P["xoxp"] + g.text(d, 11) + "-" + g.text(d, 12) + "-" + g.text(_B62, 32),
        ),
        (
            "slack-hook",
            "slack-webhook",
            "hook",
            _P["hook"] + "T" + g.text(_B32, 9) + "/B" + g.text(_B32, 9) + "/" + g.text(_B62, 24),
        ),
        ("stripe-sk", "stripe-live-key", "billing", _P["sk_live"] + g.text(_B62, 24)),
        ("stripe-rk", "stripe-live-key", "billing_ro", _P["rk_live"] + g.text(_B62, 34)),
        ("google", "google-api-key", "maps", _P["aiza"] + g.text(_URLSAFE, 35)),
        (
            "sendgrid",
            "sendgrid-api-key",
            "mail",
            _P["sg"] + g.text(_URLSAFE, 22) + "." + g.text(_URLSAFE, 43),
        ),
        ("twilio", "twilio-api-key", "sms", _P["twilio"] + g.text(_HEX, 32)),
        ("npm", "npm-token", "registry", with_github_checksum(_P["npm"], g.text(_B62, 30))),
        ("pypi", "pypi-token", "upload", _P["pypi"] + g.text(_URLSAFE, 70)),
        ("jwt", "jwt", "bearer", g.jwt(f"svc-{g.text(d, 4)}")),
        ("interlock", "interlock-api-key", "partner", new_key()[0]),
        (
            "interlock-secret",
            "interlock-client-secret",
            "partner",
            new_key(CLIENT_SECRET_PREFIX)[0],
        ),
        (
            "url-password",
            "url-password",
            "dsn",
            f"postgresql://app:{g.password()}@db.internal:5432/orders",
        ),
        ("generic-password", "generic-secret", "db_password", g.password()),
        ("generic-api-key", "generic-secret", "api_key", g.text(_B62, 32)),
        ("generic-client-secret", "generic-secret", "client_secret", g.text(_HEX, 40)),
        ("generic-token", "generic-secret", "auth_token", g.text(_URLSAFE, 40)),
    ]


def _lookalike_values(g: _Gen) -> list[tuple[str, str, str]]:
    """(label, field name, value) that must not be reported."""
    key = new_key()[0]
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
    none_jwt = f"{g.b64url({'alg': 'none'})}.{g.b64url({'sub': 'x'})}.{g.text(_URLSAFE, 43)}"
    return [
        ("ilk-wrong-checksum", "partner", wrong),
        ("ilk-short", "partner", "ilk_" + g.text(_B62, 12) + "_" + g.text(_B62, 20)),
        ("ilcs-posing-as-ilk", "partner", "ilcs_" + key.removeprefix("ilk_")),
        ("aws-docs-example", "aws_access_key_id", _P["aws"] + "IOSFODNN7" + "EXAMPLE"),
        ("ghp-filler", "token", _P["ghp"] + "x" * 36),
        ("stripe-zeros", "billing", _P["sk_live"] + "0" * 24),
        ("jwt-io-sample", "bearer", g.jwt("1234567890")),
        ("jwt-alg-none", "bearer", none_jwt),
        ("changeme", "db_password", "changeme"),
        ("env-ref", "db_password", "${DB_PASSWORD}"),
        ("secret-ref", "api_key", "secret://erp/api-key"),
        ("angle", "api_key", "<your-api-key>"),
        ("xxxx", "client_secret", "x" * 32),
        ("jinja", "db_password", "{{ vault_db_password }}"),
        ("percent", "password", "%(password)s"),
        ("test-word", "api_key", "test-" + g.text(string.ascii_lowercase, 12)),
        ("dummy", "auth_token", "dummy-token-for-unit-tests"),
        ("replace-me", "client_secret", "REPLACE_ME"),
        ("identifier", "token", "access_token"),
        ("token-url", "token_url", "https://auth.example.com/oauth2/token"),
        ("password-file", "password_file", "/run/secrets/db_password"),
        ("secret-name", "secret_name", "erp-api-key-" + g.text(string.digits, 4)),
        ("checksum", "checksum", g.text(_HEX, 64)),
        ("commit", "commit", g.text(_HEX, 40)),
        ("client-id", "client_id", g.text(_HEX, 32)),
        ("url-no-password", "dsn", "postgresql://app@db.internal:5432/orders"),
        ("url-env-password", "dsn", "postgresql://app:${PGPASSWORD}@db.internal/orders"),
        ("max-tokens", "max_tokens", "4096"),
        ("header-name", "api_key_header", "X-API-Key"),
    ]


# (label, kind, lines, hit line index) of Python switch cases; {u} is a URL.
_PY_SWITCHES: Final[list[tuple[str, Expect, list[str], int]]] = [
    ("requests-get", "switch", ["import requests", "r = requests.get(URL, verify=False)"], 1),
    (
        "requests-post",
        "switch",
        ["import requests", "r = requests.post(URL, json={}, timeout=5, verify=False)"],
        1,
    ),
    (
        "session-attr",
        "switch",
        ["import requests", "s = requests.Session()", "s.verify = False"],
        2,
    ),
    (
        "session-call",
        "switch",
        ["import requests", "s = requests.Session()", "s.get(URL, verify=False)"],
        2,
    ),
    ("httpx-client", "switch", ["import httpx", "client = httpx.Client(verify=False)"], 1),
    (
        "httpx-async",
        "switch",
        ["import httpx", "client = httpx.AsyncClient(base_url=URL, verify=False)"],
        1,
    ),
    ("kwargs-literal", "switch", ["import requests", 'requests.get(URL, **{"verify": False})'], 1),
    (
        "kwargs-dict",
        "switch",
        [
            "import requests",
            'options = {"timeout": 5, "verify": False}',
            "requests.get(URL, **options)",
        ],
        1,
    ),
    ("unverified-ctx", "switch", ["import ssl", "ctx = ssl._create_unverified_context()"], 1),
    (
        "default-ctx-patch",
        "switch",
        ["import ssl", "ssl._create_default_https_context = ssl._create_unverified_context"],
        1,
    ),
    (
        "cert-none",
        "switch",
        ["import ssl", "ctx = ssl.create_default_context()", "ctx.verify_mode = ssl.CERT_NONE"],
        2,
    ),
    (
        "cert-none-import",
        "switch",
        ["from ssl import CERT_NONE", "def f(ctx):", "    ctx.verify_mode = CERT_NONE"],
        2,
    ),
    (
        "cert-reqs-string",
        "switch",
        ["import urllib3", 'pool = urllib3.PoolManager(cert_reqs="CERT_NONE")'],
        1,
    ),
    (
        "check-hostname",
        "switch",
        ["import ssl", "ctx = ssl.create_default_context()", "ctx.check_hostname = False"],
        2,
    ),
    (
        "paramiko-autoadd",
        "switch",
        [
            "import paramiko",
            "c = paramiko.SSHClient()",
            "c.set_missing_host_key_policy(paramiko.AutoAddPolicy())",
        ],
        2,
    ),
    (
        "paramiko-warning",
        "switch",
        [
            "from paramiko import SSHClient, WarningPolicy",
            "c = SSHClient()",
            "c.set_missing_host_key_policy(WarningPolicy())",
        ],
        2,
    ),
    (
        "paramiko-class",
        "switch",
        [
            "import paramiko",
            "c = paramiko.SSHClient()",
            "c.set_missing_host_key_policy(paramiko.AutoAddPolicy)",
        ],
        2,
    ),
    ("yaml-load-bare", "switch", ["import yaml", "data = yaml.load(stream)"], 1),
    ("yaml-loader", "switch", ["import yaml", "data = yaml.load(stream, Loader=yaml.Loader)"], 1),
    ("yaml-full", "switch", ["import yaml", "data = yaml.load(stream, Loader=yaml.FullLoader)"], 1),
    ("yaml-unsafe", "switch", ["import yaml", "data = yaml.unsafe_load(stream)"], 1),
    (
        "yaml-from-import",
        "switch",
        ["from yaml import load, UnsafeLoader", "data = load(stream, UnsafeLoader)"],
        1,
    ),
    (
        "yaml-alias",
        "switch",
        ["import yaml as y", "docs = y.load_all(stream, Loader=y.UnsafeLoader)"],
        1,
    ),
    (
        "lxml-entities",
        "switch",
        ["from lxml import etree", "parser = etree.XMLParser(resolve_entities=True)"],
        1,
    ),
    (
        "lxml-network",
        "switch",
        ["from lxml import etree", "parser = etree.XMLParser(no_network=False)"],
        1,
    ),
    ("lxml-default", "switch", ["from lxml import etree", "tree = etree.parse(path)"], 1),
    ("lxml-fromstring", "switch", ["import lxml.etree", "root = lxml.etree.fromstring(body)"], 1),
    (
        "sax-external",
        "switch",
        [
            "import xml.sax",
            "from xml.sax.handler import feature_external_ges",
            "p = xml.sax.make_parser()",
            "p.setFeature(feature_external_ges, True)",
        ],
        3,
    ),
    (
        "etree-stdlib",
        "switch",
        ["import xml.etree.ElementTree as ET", "root = ET.fromstring(body)"],
        1,
    ),
    ("minidom", "switch", ["from xml.dom import minidom", "doc = minidom.parseString(body)"], 1),
    # look-alikes
    ("verify-true", None, ["import requests", "r = requests.get(URL, verify=True)"], 1),
    (
        "verify-bundle",
        None,
        ["import requests", 'r = requests.get(URL, verify="/etc/ssl/certs/ca.pem")'],
        1,
    ),
    (
        "session-bundle",
        None,
        ["import requests", "s = requests.Session()", 's.verify = "/etc/ssl/ca.pem"'],
        2,
    ),
    (
        "httpx-ctx",
        None,
        [
            "import httpx",
            "import ssl",
            "client = httpx.Client(verify=ssl.create_default_context())",
        ],
        2,
    ),
    (
        "cert-required",
        None,
        ["import ssl", "ctx = ssl.create_default_context()", "ctx.verify_mode = ssl.CERT_REQUIRED"],
        2,
    ),
    (
        "hostname-true",
        None,
        ["import ssl", "ctx = ssl.create_default_context()", "ctx.check_hostname = True"],
        2,
    ),
    (
        "cert-none-guard",
        None,
        [
            "import ssl",
            "def check(ctx):",
            "    if ctx.verify_mode == ssl.CERT_NONE:",
            "        raise ValueError('unverified')",
        ],
        2,
    ),
    (
        "paramiko-reject",
        None,
        [
            "import paramiko",
            "c = paramiko.SSHClient()",
            "c.set_missing_host_key_policy(paramiko.RejectPolicy())",
        ],
        2,
    ),
    ("yaml-safe", None, ["import yaml", "data = yaml.safe_load(stream)"], 1),
    (
        "yaml-safeloader",
        None,
        ["import yaml", "data = yaml.load(stream, Loader=yaml.SafeLoader)"],
        1,
    ),
    ("yaml-csafe", None, ["import yaml", "data = yaml.load(stream, yaml.CSafeLoader)"], 1),
    (
        "ruamel-local",
        None,
        ["from ruamel.yaml import YAML", 'yaml = YAML(typ="safe")', "data = yaml.load(text)"],
        2,
    ),
    (
        "lxml-hardened",
        None,
        [
            "from lxml import etree",
            "parser = etree.XMLParser(resolve_entities=False, no_network=True)",
        ],
        1,
    ),
    (
        "lxml-with-parser",
        None,
        [
            "from lxml import etree",
            "SAFE = etree.XMLParser(resolve_entities=False)",
            "tree = etree.parse(path, SAFE)",
        ],
        2,
    ),
    ("defusedxml", None, ["import defusedxml.ElementTree as ET", "root = ET.fromstring(body)"], 1),
    (
        "comment",
        None,
        [
            "import requests",
            "# never call requests.get(URL, verify=False)",
            "r = requests.get(URL)",
        ],
        1,
    ),
    (
        "docstring",
        None,
        ['"""Do not use verify=False or ssl.CERT_NONE; yaml.load(x) is unsafe."""', "X = 1"],
        0,
    ),
    (
        "log-message",
        None,
        [
            "import logging",
            'logging.warning("verify=False is refused; check_hostname = False too")',
        ],
        1,
    ),
    (
        "param-default",
        None,
        [
            "import requests",
            "def fetch(url, verify=True):",
            "    return requests.get(url, verify=verify)",
        ],
        1,
    ),
]

# (label, kind, extension, line) of config switch cases.
_CONFIG_SWITCHES: Final[list[tuple[str, Expect, str, str]]] = [
    ("yaml-verify", "switch", "yaml", "  verify: false"),
    ("yaml-ssl-verify", "switch", "yaml", "  ssl_verify: false"),
    ("yaml-tls-verify", "switch", "yaml", "  tls_verify: no"),
    ("yaml-skip", "switch", "yaml", "  insecure_skip_verify: true"),
    ("yaml-camel", "switch", "yaml", "  insecureSkipVerify: true"),
    ("json-verify", "switch", "json", '  "verify": false,'),
    ("ini-sslverify", "switch", "ini", "sslverify = 0"),
    ("toml-hostname", "switch", "toml", "check_hostname = false"),
    ("toml-skip", "switch", "toml", "tls_skip_verify = true"),
    ("env-sslmode", "switch", "env", "PG" + _P["sslmode"].upper()),
    ("dsn-sslmode", "switch", "yaml", "  dsn: postgresql://app@db/orders?" + _P["sslmode"]),
    ("yaml-verify-true", None, "yaml", "  verify: true"),
    ("yaml-verify-path", None, "yaml", "  verify: /etc/ssl/certs/ca.pem"),
    ("yaml-skip-false", None, "yaml", "  insecure_skip_verify: false"),
    ("yaml-commented", None, "yaml", "# verify: false"),
    ("json-hostname-true", None, "json", '  "check_hostname": true,'),
    ("toml-sslmode-full", None, "toml", 'dsn = "postgresql://app@db/orders?sslmode=verify-full"'),
    ("ini-verify-on", None, "ini", "ssl_verify = 1"),
    ("yaml-named-client", None, "yaml", "  verify_email: false"),
]


def _config_line(ext: str, key: str, value: str) -> str:
    if ext in {"py", "toml"}:
        return f'{key} = "{value}"'
    if ext == "yaml":
        return f"  {key}: {value}" if ":" not in value else f'  {key}: "{value}"'
    if ext == "json":
        return f'  "{key}": "{value}",'
    if ext == "env":
        return f"{key.upper()}={value}"
    if ext == "ini":
        return f"{key} = {value}"
    return f'const {key} = "{value}";'


_WRAP: Final[dict[str, Callable[[str], list[str]]]] = {
    "py": lambda line: [
        '"""Settings of the order sync."""',
        "",
        "TIMEOUT = 30",
        line,
        "RETRIES = 3",
    ],
    "yaml": lambda line: [
        "# order sync",
        "upstream:",
        '  url: "https://erp.internal:9443"',
        line,
        "  timeout: 30",
    ],
    "json": lambda line: [
        "{",
        '  "url": "https://erp.internal:9443",',
        line,
        '  "timeout": 30',
        "}",
    ],
    "env": lambda line: ["# order sync", "ERP_URL=https://erp.internal:9443", line, "TIMEOUT=30"],
    "ini": lambda line: ["[upstream]", "url = https://erp.internal:9443", line, "timeout = 30"],
    "toml": lambda line: ["[upstream]", 'url = "https://erp.internal:9443"', line, "timeout = 30"],
    "js": lambda line: [
        "// order sync",
        'const url = "https://erp.internal:9443";',
        line,
        "module.exports = { url };",
    ],
}
_EXTS: Final = ("py", "yaml", "json", "env", "ini", "toml", "js")


def write_corpus(root: Path, *, seed: int = 9, rounds: int = 5) -> list[Case]:
    """Write the corpus below ``root``; return its cases (``rounds`` values per template)."""
    g = _Gen(seed)
    cases: list[Case] = []

    def put(name: str, lines: list[str], hit: int, kind: Expect, label: str) -> None:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        cases.append(Case(name, hit + 1, kind, label))

    for r in range(rounds):
        for i, (label, _, key, value) in enumerate(_secret_values(g)):
            ext = _EXTS[(i + r) % len(_EXTS)]
            lines = _WRAP[ext](_config_line(ext, key, value))
            put(f"secrets/{r}/{label}.{ext}", lines, _hit(lines, value), "secret", label)
        for i, (label, key, value) in enumerate(_lookalike_values(g)):
            ext = _EXTS[(i + r) % len(_EXTS)]
            put(
                f"lookalikes/{r}/{label}.{ext}",
                _WRAP[ext](_config_line(ext, key, value)),
                0,
                None,
                label,
            )
        kind_pem = ("RSA", "EC", "OPENSSH", "")[r % 4]
        pem = g.pem(kind_pem)
        put(f"secrets/{r}/private-key.pem", pem, 0, "secret", "private-key")
        put(
            f"secrets/{r}/private-key.json",
            ['{"key": "' + "\\n".join(pem) + '\\n"}'],
            0,
            "secret",
            "pem-in-json",
        )
        put(
            f"lookalikes/{r}/pem-no-body.md",
            ["Paste it like:", "", pem[0], "...", pem[-1]],
            0,
            None,
            "pem-no-body",
        )
        for label, kind, lines, hit in _PY_SWITCHES:
            body = ['URL = "https://erp.internal:9443/orders"', *lines]
            put(f"switches/{r}/{label.replace('-', '_')}.py", body, hit + 1, kind, label)
        for label, kind, ext, line in _CONFIG_SWITCHES:
            lines = _WRAP[ext](line)
            put(f"switches/{r}/{label}.{ext}", lines, lines.index(line), kind, label)
    return cases


def planted_secrets(seed: int = 9) -> list[tuple[str, str, str, str]]:
    """(label, expected rule id, field name, value) of one secret of each family."""
    return _secret_values(_Gen(seed))


def lookalike_secrets(seed: int = 9) -> list[tuple[str, str, str]]:
    """(label, field name, value) of values no rule may report."""
    return _lookalike_values(_Gen(seed))


def _hit(lines: list[str], value: str) -> int:
    return next(index for index, line in enumerate(lines) if value in line)
