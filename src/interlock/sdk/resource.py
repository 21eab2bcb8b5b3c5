"""Calls to resource servers: the credential headers, and when a call is retried.

Shared by the httpx and the requests auth classes, so both follow one rule:

* ``Authorization: Bearer <token>``, or for a DPoP-bound token
  ``Authorization: DPoP <token>`` plus a fresh ``DPoP`` proof with ``ath``
  (RFC 9449 §7.1). Credentials are never sent over plain ``http://``.
* A 401 carrying ``use_dpop_nonce`` (RFC 9449 §9) is retried once with the
  server's nonce; any other 401 is retried once with a fresh token (the cached
  one may have been revoked). Only requests whose body can be sent again are
  retried; a streaming body gets the first answer as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableSet
from typing import Literal
from urllib.parse import urlsplit

from interlock.sdk.credentials import ClientCredentials
from interlock.sdk.errors import InsecureTransportError
from interlock.sdk.rfc9449 import nonce_requested
from interlock.sdk.tokens import AccessToken

__all__ = ["Retry", "credential_headers", "next_step"]

_log = logging.getLogger(__name__)

#: Why a request is sent again: with a server nonce, or with a fresh token.
Retry = Literal["nonce", "token"]


def credential_headers(
    credentials: ClientCredentials, token: AccessToken, method: str, url: str
) -> dict[str, str]:
    """The headers that authorise one ``method`` request to ``url`` with ``token``."""
    if urlsplit(url).scheme.lower() != "https":
        raise InsecureTransportError("access tokens are sent over https:// only")
    headers = {"Authorization": f"{token.token_type} {token.value}"}
    if token.token_type == "DPoP" and credentials.dpop is not None:  # noqa: S105  (a type name)
        headers["DPoP"] = credentials.dpop.proof(method, url, token.value)
    return headers


def next_step(
    credentials: ClientCredentials,
    url: str,
    status: int,
    headers: Mapping[str, str],
    *,
    replayable: bool,
    done: MutableSet[Retry],
) -> Retry | None:
    """Whether (and why) to send the request again after this answer; notes it in ``done``.

    A ``DPoP-Nonce`` on any answer is remembered for the origin (RFC 9449 §8.2).
    """
    if credentials.dpop is not None:
        credentials.dpop.remember_nonce(url, headers)
    if not replayable or status != 401:
        return None
    step: Retry = (
        "nonce" if credentials.dpop is not None and nonce_requested(status, headers) else "token"
    )
    if step in done:
        return None
    done.add(step)
    _log.debug("retrying a request refused with 401: %s", step)
    return step
