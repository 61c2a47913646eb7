"""Named random streams.

Every component of the simulator draws from its own stream, keyed by (seed, component, block),
and always draws arrays of the same shape whatever the scenario. Scenarios then *transform*
those draws from the drift day on. So two runs with the same seed and different scenarios are
bit-identical before the drift day and in everything the scenario does not touch, which makes
"this scenario changes only X" exactly testable.
"""

from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, component: str, block: int = 0) -> np.random.Generator:
    """A generator for one component of one block of users (0 = cohort, 1 = late joiners)."""
    # crc32 rather than hash(): hash() of str is salted per process, crc32 is stable.
    key = zlib.crc32(component.encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence([seed, key, block]))
