"""What integration services embed, wired to the deployment they run in.

A service that produces or consumes an integration's messages runs on a host
of the deployment (its data directory, keyring and store): these helpers open
what the libraries of :mod:`interlock.messaging` need — the manifest, keys,
audit log, vault, de-duplication store, a client certificate from the PKI and
the broker connection — so that a producer or a consumer is a few lines
(docs/messaging.md).
"""
