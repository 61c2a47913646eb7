"""The commands' tests run on the data the layers' own tests build."""

from tests.monitoring.conftest import scenario_cache, scenario_data, scorer
from tests.training.conftest import small_cohort

__all__ = ["scenario_cache", "scenario_data", "scorer", "small_cohort"]
