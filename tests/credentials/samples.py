"""One generated sample per registered credential format, built at run time.

Every value is random and made when the test runs (checksums computed, a real
EC key generated), so no credential is stored in the repository. A format
added to the registry without a sample here fails ``test_every_format_has_a_sample``.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
from collections.abc import Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from interlock.credentials.checks import filler, with_github_checksum
from interlock.credentials.keyformat import CLIENT_SECRET_PREFIX, new_key
from interlock.credentials.values import is_placeholder

B62 = string.ascii_letters + string.digits
B64 = B62 + "+/"
URLSAFE = B62 + "-_"
HEX = "0123456789abcdef"
B32 = string.ascii_uppercase + "234567"


def rand(length: int, alphabet: str = B62) -> str:
    """A random string that reads as neither a placeholder nor a filler."""
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        if not is_placeholder(value) and not filler(value) and not value[0].isdigit():
            return value


def digits(length: int) -> str:
    """A random number of ``length`` digits, no leading zero."""
    return str(secrets.randbelow(9 * 10 ** (length - 1)) + 10 ** (length - 1))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt() -> str:
    """A JWT with a decodable header and payload and a 64-byte-long random signature."""
    header = _b64url(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
    payload = _b64url(json.dumps({"sub": "svc-" + rand(8), "iat": 1700000000}).encode())
    return f"{header}.{payload}.{rand(86, URLSAFE)}"


def pem_private_key() -> str:
    """A freshly generated EC private key in PKCS#8 PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _in(text: str) -> Callable[[str], tuple[str, str]]:
    return lambda secret: (text.format(secret=secret), secret)


# format id -> () -> (a text holding the credential, the credential itself)
SAMPLES: dict[str, Callable[[], tuple[str, str]]] = {
    "interlock-api-key": lambda: _in("{secret}")(new_key()[0]),
    "interlock-client-secret": lambda: _in("{secret}")(new_key(CLIENT_SECRET_PREFIX)[0]),
    "aws-access-key-id": lambda: _in("{secret}")("AKIA" + rand(16, B32)),
    "aws-secret-access-key": lambda: _in("aws_secret_access_key = {secret}")(rand(40, B64)),
    "azure-storage-key": lambda: _in(
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={secret};"
    )(rand(86, B64) + "=="),
    "azure-ad-client-secret": lambda: _in("{secret}")(rand(3) + "8Q~" + rand(34, B62 + "_~.-")),
    "github-token": lambda: _in("{secret}")(with_github_checksum("ghp_", rand(30))),
    "gitlab-token": lambda: _in("{secret}")("glpat-" + rand(20, URLSAFE)),
    "slack-token": lambda: _in("{secret}")(f"xoxb-{digits(11)}-{digits(13)}-{rand(24)}"),
    "slack-webhook": lambda: _in("{secret}")(
        f"https://hooks.slack.com/services/T{rand(8, B32)}/B{rand(10, B32)}/{rand(24)}"
    ),
    "stripe-live-key": lambda: _in("{secret}")("sk_live_" + rand(24)),
    "google-api-key": lambda: _in("{secret}")("AIza" + rand(35, URLSAFE)),
    "sendgrid-api-key": lambda: _in("{secret}")(f"SG.{rand(22, URLSAFE)}.{rand(43, URLSAFE)}"),
    "twilio-api-key": lambda: _in("{secret}")("SK" + rand(32, HEX)),
    "npm-token": lambda: _in("{secret}")(with_github_checksum("npm_", rand(30))),
    "pypi-token": lambda: _in("{secret}")("pypi-AgEIcHlwaS5vcmc" + rand(60, URLSAFE)),
    "huggingface-token": lambda: _in("{secret}")("hf_" + rand(34, string.ascii_letters)),
    "openai-api-key": lambda: _in("{secret}")(f"sk-proj-{rand(24)}T3BlbkFJ{rand(24)}"),
    "jwt": lambda: _in("{secret}")(jwt()),
    "jwt-base64": lambda: _in("{secret}")(base64.b64encode(jwt().encode()).decode()),
    "private-key": lambda: (key := pem_private_key(), key.splitlines()[1]),
    "http-authorization": lambda: _in("Authorization: Bearer {secret}")(rand(40, URLSAFE)),
    "command-line-credential": lambda: _in("curl -u deploy:{secret} https://api.internal/")(
        rand(18)
    ),
    "xml-password": lambda: _in('<add key="ClearTextPassword" value="{secret}" />')(rand(18)),
    "url-password": lambda: _in("postgresql://app:{secret}@db.internal:5432/app")(rand(18)),
}
