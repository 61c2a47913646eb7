"""Personal baselines are causal: a day's features use only that user's earlier days."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fatigue_guard.contract.baselines import BASELINE_FEATURES, WARMUP_DAYS
from fatigue_guard.contract.features import LABEL_COLUMN
from fatigue_guard.simulation import CohortConfig
from tests.simulation.helpers import day_of_row


def test_warm_up_days_are_null_then_baselines_appear(cohort) -> None:
    frame = cohort()
    day = day_of_row(frame, CohortConfig().moments_per_day)
    nightly = [name for name in BASELINE_FEATURES if name != "recent_fatigue_rate_14d"]
    assert frame.loc[day < WARMUP_DAYS, nightly].isna().all().all()
    # The fatigue rate's window is in calendar dates of measured_at (late moments fall on the
    # next date), so its warm-up is counted in dates.
    dates = frame["measured_at"].dt.normalize()
    date_number = (dates - dates.min()).dt.days.to_numpy()
    assert frame.loc[date_number < WARMUP_DAYS, "recent_fatigue_rate_14d"].isna().all()
    settled = frame[day >= WARMUP_DAYS + 1]
    for name in ["sleep_debt_7d_h", "sleep_midpoint_shift_h", "resting_hr_delta_bpm"]:
        assert settled[name].notna().mean() > 0.99, name
    assert settled["recent_fatigue_rate_14d"].notna().mean() > 0.99


def test_recent_fatigue_rate_matches_its_contract_definition(cohort) -> None:
    """Recompute "share of positive reports over the 14 days before measured_at's date"."""
    frame = cohort().head(8 * 24 * 4)  # the first 8 users are plenty
    date = frame["measured_at"].dt.tz_convert("UTC").dt.normalize()
    daily = frame.assign(date=date).groupby(["user_id", "date"])[LABEL_COLUMN].agg(["sum", "count"])
    expected = []
    for user_id, when in zip(frame["user_id"], date, strict=True):
        mine = daily.loc[user_id]
        window = mine[(mine.index < when) & (mine.index >= when - pd.Timedelta(days=14))]
        enough = len(window) >= WARMUP_DAYS
        expected.append(window["sum"].sum() / window["count"].sum() if enough else np.nan)
    np.testing.assert_allclose(frame["recent_fatigue_rate_14d"], expected, atol=1e-6)
