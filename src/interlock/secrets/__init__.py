"""Secrets: outbound credentials named ``secret://...`` in the manifest.

This is the minimal sealed store the gateway needs now; the vault (access
policy, versions, leases, rotation) grows from the same interface
(:mod:`interlock.secrets.resolver`, :mod:`interlock.secrets.store`). Nothing is
imported here, so that a light user of :class:`~interlock.secrets.resolver.Secret`
does not load the store.
"""
