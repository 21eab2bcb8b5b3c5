"""How long an access token of ours can pass the verifier, at the most.

The verifier accepts a token until ``exp`` plus its clock leeway, so whatever
must outlast a token (a revocation of it, a cut of its client's tokens) is
kept that long past ``exp`` too. One place for both bounds keeps them in step.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

__all__ = ["MAX_LEEWAY", "MAX_LIFETIME"]

MAX_LIFETIME: Final = timedelta(hours=1)  # iat to exp
MAX_LEEWAY: Final = timedelta(minutes=5)  # the clock skew a verifier may allow past exp
