"""Secrets: the vault behind ``secret://...`` references.

:mod:`interlock.secrets.vault` holds versioned secrets under an access policy
(:mod:`interlock.secrets.policy`); :mod:`interlock.secrets.rotation` rotates
them. Anything that only needs a value goes through the one interface in
:mod:`interlock.secrets.resolver`, and every value travels as the masked
:class:`~interlock.secret.Secret` of the foundation. Nothing is imported here,
so importing one module of the package does not load the store.
"""
