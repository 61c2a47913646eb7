"""The lifecycle's tests train on the training tests' small simulated cohort."""

from tests.training.conftest import small_cohort

__all__ = ["small_cohort"]
