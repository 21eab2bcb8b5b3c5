"""Secrets: outbound credentials named ``secret://...`` in the manifest.

This is the minimal sealed store the gateway needs now; the vault (access
policy, versions, leases, rotation) grows from the same interface.
"""

from interlock.secrets.resolver import Secret, SecretResolver
from interlock.secrets.store import SecretStore

__all__ = ["Secret", "SecretResolver", "SecretStore"]
