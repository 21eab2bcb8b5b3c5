"""Who acts: an operator, whom no access policy restricts, or a client, whom the policy does.

Named at every call site so that skipping a check is visible in the code, never
the silent meaning of ``client=None``. Both carry the name the audit trail
records: an operator's own (``admin:alice``, ``system:gateway``,
``system:rotation``), a client's as ``client:NAME``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Actor", "Client", "Operator"]


@dataclass(frozen=True)
class Operator:
    """Someone who holds the deployment's keys: the CLI on the host, or the gateway itself.

    The access policy does not apply to an operator (it could read the keyring
    anyway); everything it does is still recorded under :attr:`label`.
    """

    name: str

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 200:
            raise ValueError("an operator's name is 1 to 200 characters")

    @property
    def label(self) -> str:
        """The name the audit trail records."""
        return self.name


@dataclass(frozen=True)
class Client:
    """A service account of the manifest, calling over the network: the policy decides."""

    name: str

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 63:
            raise ValueError("a client's name is 1 to 63 characters")

    @property
    def label(self) -> str:
        """The name the audit trail records."""
        return f"client:{self.name}"


Actor = Operator | Client
