"""Day types from the schedule: day work, free day or a night shift.

The schedule decides when people must be up (alarm on work days), when they can catch up
(weekends) and when they sleep by day (after night shifts): the main source of short sleep.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from fatigue_guard.simulation.traits import FLEXIBLE, REGULAR, SHIFT, Traits

FREE, DAY_WORK, NIGHT_SHIFT = 0, 1, 2
# A 14-day rota: four day shifts, three off, four night shifts (22:00-06:00), three off.
ROTA: Final[np.ndarray] = np.array([1, 1, 1, 1, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0])
REGULAR_DAY_OFF_PROB: Final[float] = 0.04  # leave, sick days, ...
FLEXIBLE_BUSY_PROB: Final[float] = 0.3  # flexible people sometimes have an early start


def day_types(
    traits: Traits, rng: np.random.Generator, day_numbers: np.ndarray, start_weekday: int
) -> np.ndarray:
    """Type of each day, shape ``(users, len(day_numbers))``.

    ``day_numbers`` counts days from the cohort's start date (negative = before it);
    ``start_weekday`` is the start date's weekday (Monday = 0).
    """
    u = rng.random((traits.n, day_numbers.size))
    weekday = (start_weekday + day_numbers) % 7
    regular = np.where(weekday < 5, DAY_WORK, FREE)[None, :]
    regular = np.where(u < REGULAR_DAY_OFF_PROB, FREE, regular)
    rota = ROTA[(traits.rota_offset[:, None] + day_numbers[None, :]) % ROTA.size]
    flexible = np.where(u < FLEXIBLE_BUSY_PROB, DAY_WORK, FREE)
    emp = traits.employment[:, None]
    types = np.select([emp == REGULAR, emp == SHIFT, emp == FLEXIBLE], [regular, rota, flexible])
    return types.astype(np.int8)
