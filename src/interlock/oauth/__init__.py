"""OAuth 2.0 for system-to-system calls: the authorization server and token verification.

Nothing is imported here, so that light users (the SDK needs only the DPoP
claim helpers) do not load the store.
"""
