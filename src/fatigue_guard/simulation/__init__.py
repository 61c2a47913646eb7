"""Seeded, vectorised cohort simulator producing contract-format tables.

>>> from fatigue_guard.simulation import CohortConfig, simulate_cohort
>>> frame = simulate_cohort(CohortConfig(users=50, days=14, seed=1))
"""

from fatigue_guard.simulation.cohort import simulate_cohort
from fatigue_guard.simulation.config import SCENARIOS, CohortConfig

__all__ = ["SCENARIOS", "CohortConfig", "simulate_cohort"]
