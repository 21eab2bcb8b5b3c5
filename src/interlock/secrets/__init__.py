"""Secrets: the vault behind ``secret://...`` references.

:mod:`interlock.secrets.vault` holds versioned secrets under an access policy
(:mod:`interlock.secrets.policy`); :mod:`interlock.secrets.rotation` rotates
them. Anything that only needs a value goes through the one interface in
:mod:`interlock.secrets.resolver`. Nothing is imported here, so that a light
user of :class:`~interlock.secrets.resolver.Secret` does not load the store.
"""
