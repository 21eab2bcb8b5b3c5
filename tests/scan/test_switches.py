"""Insecure switches: found on the Python syntax tree in their common forms, and in config files."""

from __future__ import annotations

import pytest

from tests.scan.helpers import findings, rules_in

PYTHON_POSITIVES = [
    ("import requests\nrequests.get(u, verify=False)\n", "tls-verify-disabled"),
    ("import requests\ns = requests.Session()\ns.get(u, verify=False)\n", "tls-verify-disabled"),
    ("import requests\ns = requests.Session()\ns.verify = False\n", "tls-verify-disabled"),
    ("import httpx\nc = httpx.Client(verify=False)\n", "tls-verify-disabled"),
    ('import requests\nrequests.get(u, **{"verify": False})\n', "tls-verify-disabled"),
    ('kw = {"verify": False}\n', "tls-verify-disabled"),
    ('kw["verify"] = False\n', "tls-verify-disabled"),
    ("import ssl\nctx = ssl._create_unverified_context()\n", "tls-unverified-context"),
    (
        "import ssl\nssl._create_default_https_context = ssl._create_unverified_context\n",
        "tls-unverified-context",
    ),
    ("import ssl\nctx.verify_mode = ssl.CERT_NONE\n", "tls-cert-none"),
    ("from ssl import CERT_NONE\nmode = CERT_NONE\n", "tls-cert-none"),
    ('import urllib3\nurllib3.PoolManager(cert_reqs="CERT_NONE")\n', "tls-cert-none"),
    ("ctx.check_hostname = False\n", "tls-hostname-check-disabled"),
    (
        "import paramiko\nc.set_missing_host_key_policy(paramiko.AutoAddPolicy())\n",
        "ssh-unknown-host-accepted",
    ),
    (
        "from paramiko import WarningPolicy\nc.set_missing_host_key_policy(WarningPolicy)\n",
        "ssh-unknown-host-accepted",
    ),
    ("import yaml\nyaml.load(s)\n", "yaml-unsafe-load"),
    ("import yaml\nyaml.load(s, Loader=yaml.FullLoader)\n", "yaml-unsafe-load"),
    ("import yaml as y\ny.unsafe_load(s)\n", "yaml-unsafe-load"),
    ("from yaml import load, Loader\nload(s, Loader)\n", "yaml-unsafe-load"),
    ('from ruamel.yaml import YAML\nYAML(typ="unsafe")\n', "yaml-unsafe-load"),
    (
        "from lxml import etree\np = etree.XMLParser(resolve_entities=True)\n",
        "xml-external-entities",
    ),
    ("from lxml import etree\np = etree.XMLParser(no_network=False)\n", "xml-external-entities"),
    (
        "import xml.sax\nfrom xml.sax.handler import feature_external_ges\np.setFeature(feature_external_ges, True)\n",
        "xml-external-entities",
    ),
    ("from lxml import etree\netree.parse(f)\n", "xml-lxml-default-parser"),
    ("import xml.etree.ElementTree as ET\nET.fromstring(b)\n", "xml-stdlib-parse"),
    ("from xml.dom import minidom\nminidom.parseString(b)\n", "xml-stdlib-parse"),
    ('DSN = "postgresql://app@db/x?sslmode=' + 'disable"\n', "postgres-sslmode-disable"),
]

PYTHON_NEGATIVES = [
    "import requests\nrequests.get(u, verify=True)\n",
    'import requests\nrequests.get(u, verify="/etc/ssl/ca.pem")\n',
    "import httpx, ssl\nhttpx.Client(verify=ssl.create_default_context())\n",
    "import ssl\nctx.verify_mode = ssl.CERT_REQUIRED\nctx.check_hostname = True\n",
    "import ssl\nif ctx.verify_mode == ssl.CERT_NONE:\n    raise ValueError\n",
    "import paramiko\nc.set_missing_host_key_policy(paramiko.RejectPolicy())\n",
    "import yaml\nyaml.safe_load(s)\nyaml.load(s, Loader=yaml.SafeLoader)\n",
    'from ruamel.yaml import YAML\nyaml = YAML(typ="safe")\nyaml.load(s)\n',
    "from lxml import etree\nP = etree.XMLParser(resolve_entities=False)\netree.parse(f, P)\n",
    "import defusedxml.ElementTree as ET\nET.fromstring(b)\n",
    '"""Never use verify=False, ssl.CERT_NONE or yaml.load(s)."""\n',
    "# requests.get(u, verify=False)\n",
    'log.warning("verify=False is refused")\n',
    '"""Connection strings with sslmode=' + 'disable are refused."""\n',
]


@pytest.mark.parametrize(("source", "rule_id"), PYTHON_POSITIVES)
def test_python_switch_is_found(source: str, rule_id: str) -> None:
    """Each common form of an insecure switch is reported by its rule."""
    assert rule_id in rules_in("client.py", source)


@pytest.mark.parametrize("source", PYTHON_NEGATIVES)
def test_safe_python_forms_and_prose_are_not_reported(source: str) -> None:
    """Safe values, guards, other libraries' load methods, comments and strings give no finding."""
    assert findings("client.py", source) == []


@pytest.mark.parametrize(
    ("path", "line", "rule_id"),
    [
        ("c.yaml", "tls:\n  verify: false\n", "tls-verify-disabled"),
        ("c.yaml", "tls:\n  insecure_skip_verify: true\n", "tls-verify-disabled"),
        ("c.yaml", "tls:\n  insecureSkipVerify: true\n", "tls-verify-disabled"),
        ("c.json", '{"ssl_verify": false}\n', "tls-verify-disabled"),
        ("c.toml", "tls_verify = false\n", "tls-verify-disabled"),
        ("c.ini", "[x]\nsslverify = 0\n", "tls-verify-disabled"),
        ("c.yaml", "check_hostname: false\n", "tls-hostname-check-disabled"),
        (".env", "PGSSLMODE=" + "disable\n", "postgres-sslmode-disable"),
        ("c.yaml", "dsn: postgresql://db/x?sslmode=" + "disable\n", "postgres-sslmode-disable"),
    ],
)
def test_config_switch_is_found(path: str, line: str, rule_id: str) -> None:
    """The config-file forms of the switches are reported."""
    assert rule_id in rules_in(path, line)


@pytest.mark.parametrize(
    "text",
    [
        "verify: true\n",
        "verify: /etc/ssl/ca.pem\n",
        "insecure_skip_verify: false\n",
        "# verify: false\n",
        "verify_email: false\n",
        "dsn: postgresql://db/x?sslmode=verify-full\n",
    ],
)
def test_safe_config_values_are_not_reported(text: str) -> None:
    """Verification on, a CA path, commented lines and unrelated keys give no finding."""
    assert findings("c.yaml", text) == []


def test_xml_parse_of_the_standard_library_is_a_note() -> None:
    """Parsing with xml.etree is reported at the lower level; entity resolution as an error."""
    (note,) = findings("x.py", "import xml.etree.ElementTree as ET\nET.parse(f)\n")
    assert note.level == "note"
    (error,) = findings("x.py", "from lxml import etree\netree.XMLParser(resolve_entities=True)\n")
    assert error.level == "error"


def test_switch_finding_points_at_the_line_and_shows_the_code() -> None:
    """A switch finding is located (1-based) and shows the offending source line."""
    (finding,) = findings("x.py", "import requests\n\nrequests.get(u, verify=False)\n")
    assert (finding.line, finding.shown) == (3, "requests.get(u, verify=False)")
