"""OAuth 2.0 for system-to-system calls: signing keys first; the server grows from here."""

from interlock.oauth.signing_keys import KeyTimings, SigningKey, SigningKeys

__all__ = ["KeyTimings", "SigningKey", "SigningKeys"]
