"""Data subjects identified in a route's traffic (the manifest's ``subjects`` locators).

A :class:`Sighting` is one identified person in one request: the identifier's
kind and normalised value (:mod:`interlock.gdpr.identifiers`), which side
received data about them, and in which direction it travelled. Sightings live
only for the request: the gateway turns them into keyed hashes for the lineage
index (:mod:`interlock.privacy.lineage`) and never logs or stores the value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Sighting"]


@dataclass(frozen=True, slots=True)
class Sighting:
    """One person identified in one request (the value is normalised, never logged)."""

    kind: str
    value: str = field(repr=False)
    receiver: Literal["upstream", "caller"]
    direction: Literal["request", "response"]
