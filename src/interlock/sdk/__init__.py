"""Client SDK: call an Interlock gateway (or any OAuth 2.0 resource server) as a client.

Tokens come from the client credentials grant (RFC 6749 §4.4), authenticated
by a client secret (``client_secret_basic``, ``client_secret_post``) or a
private key (``private_key_jwt``, RFC 7523), built with Authlib. They are
cached per (client, scope, resource), renewed shortly before they expire with
one renewal in flight, and a request refused with 401 is retried once with a
fresh token. With ``dpop=True`` tokens are bound to a key pair (DPoP, RFC
9449) and every request carries a fresh proof.

Example::

    import httpx
    from interlock.sdk import ClientCredentials, InterlockAuth

    credentials = ClientCredentials(
        "https://gateway.example/oauth2/token",
        "order-sync",
        client_secret=os.environ["ORDER_SYNC_SECRET"],
        scope="orders.read",
        verify="/etc/interlock/ca.pem",  # default: the system trust store
    )
    with httpx.Client(auth=InterlockAuth(credentials)) as client:
        order = client.get("https://gateway.example/orders/1001").json()

The same ``InterlockAuth`` works with ``httpx.AsyncClient``; for ``requests``
pass ``auth=InterlockRequestsAuth(credentials)``. Share one
:class:`ClientCredentials` per client so all its auth objects share tokens.

Guarantees: TLS verification cannot be switched off (``verify=False`` is a
``ValueError``); tokens are never sent over ``http://``
(:class:`InsecureTransportError`); the secret and keys are absent from
``repr``, errors and logs (stdlib ``logging``, logger ``interlock.sdk``, debug
level only); a refusal by the token endpoint raises :class:`TokenRequestError`
with its RFC 6749 ``error`` code. Not retried: requests with a streaming body.

Signed requests (RFC 9421 HTTP Message Signatures) for partner clients: a
:class:`RequestSigner` holds the key the operator registered (Ed25519, ECDSA
P-256, or an HMAC-SHA256 shared secret) and signs method, target URI and a
body's ``Content-Digest``, with ``created`` and a fresh ``nonce``. Send them
with ``SignedRequests(signer, inner)`` (httpx) or
``SignedRequestsAuth(signer, inner)`` (requests); every request the inner auth
yields, its retries included, is signed afresh::

    signer = RequestSigner("partner-1", Path("partner-1.pem").read_bytes())
    auth = SignedRequests(signer, InterlockAuth(credentials))
"""

from interlock.sdk.credentials import AuthMethod, ClientCredentials
from interlock.sdk.errors import InsecureTransportError, TokenRequestError
from interlock.sdk.httpx_auth import InterlockAuth
from interlock.sdk.requests_auth import InterlockRequestsAuth
from interlock.sdk.rfc9421 import RequestSigner, SignedRequests, SignedRequestsAuth
from interlock.sdk.rfc9449 import DPoPKey
from interlock.sdk.tokens import AccessToken

__all__ = [
    "AccessToken",
    "AuthMethod",
    "ClientCredentials",
    "DPoPKey",
    "InsecureTransportError",
    "InterlockAuth",
    "InterlockRequestsAuth",
    "RequestSigner",
    "SignedRequests",
    "SignedRequestsAuth",
    "TokenRequestError",
]
