"""Replay prevention: values that may be used once (nonces, assertion and proof ``jti``)."""
