"""Bounded exponential back-off with full jitter, for sync retries.

Full jitter because thousands of phones come back online together after a network outage;
without it they would retry in lock-step against a recovering server.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """``attempts`` tries in total; the wait before retry ``n`` is at most ``base * 2**n``."""

    attempts: int = 4
    base_s: float = 0.5
    max_s: float = 8.0

    def delay(
        self, retry: int, retry_after_s: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before retry number ``retry`` (0-based); honours Retry-After."""
        cap = min(self.max_s, self.base_s * (2**retry))
        wait = (rng or random).uniform(0, cap)
        if retry_after_s is not None:
            wait = max(wait, min(retry_after_s, self.max_s))
        return wait
