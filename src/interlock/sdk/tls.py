"""The TLS trust the SDK uses for the token endpoint: verification is always on.

There is deliberately no switch to turn it off (house rule 2): ``verify=False``,
or an ``ssl.SSLContext`` that skips certificate or host-name checks, is refused.
Contexts made here are :func:`interlock.outbound.tls_context`'s (TLS 1.2 or later).
"""

from __future__ import annotations

import os
import ssl

from interlock.outbound import tls_context

__all__ = ["Verify", "client_context"]

#: A CA bundle (path), a ready context, or ``None``/``True`` for the system's trust store.
Verify = str | os.PathLike[str] | ssl.SSLContext | bool | None


def client_context(verify: Verify) -> ssl.SSLContext:
    """An SSL context that verifies the server's certificate and host name.

    ``None`` or ``True``: the system trust store. A path: that CA bundle only.
    An :class:`ssl.SSLContext`: used as given, if it verifies. ``False`` raises
    :class:`ValueError`.
    """
    if verify is None or verify is True:
        return tls_context()
    if verify is False:
        raise ValueError("TLS verification cannot be disabled; pass a CA file to trust instead")
    if isinstance(verify, ssl.SSLContext):
        if verify.verify_mode != ssl.CERT_REQUIRED or not verify.check_hostname:
            raise ValueError(
                "the SSLContext must verify certificates (CERT_REQUIRED) and host names"
            )
        return verify
    if isinstance(verify, str | os.PathLike):
        return tls_context(verify)
    raise TypeError(f"verify must be a CA file path or an ssl.SSLContext, not {type(verify)}")
