"""Table validation applies the same rules as the API, vectorised, with reasons and examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fatigue_guard.contract.features import FEATURE_NAMES
from fatigue_guard.contract.frame import (
    ContractError,
    coerce_feature_columns,
    feature_matrix,
    validate_frame,
)


def table(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "user_id": ["u1"] * n,
            "sleep_duration_h": np.full(n, 7.0),
            "sleep_efficiency": np.full(n, 0.9),
            "resting_hr_bpm": np.full(n, 60.0),
            "hours_awake": np.full(n, 5.0),
            "local_hour": np.full(n, 12.0),
            "hrv_rmssd_ms": np.full(n, 45.0),
        }
    )


def test_clean_table_is_valid_and_absent_optional_columns_become_missing() -> None:
    frame = coerce_feature_columns(table())
    report = validate_frame(frame)
    assert report.invalid_rows == 0
    matrix = feature_matrix(frame)
    assert matrix.shape == (6, len(FEATURE_NAMES))
    assert matrix.dtype == np.float32
    assert np.isnan(matrix[:, FEATURE_NAMES.index("steps_24h")]).all()


def test_real_export_defects_are_counted_by_reason_with_examples() -> None:
    raw = table()
    raw.loc[0, "hrv_rmssd_ms"] = 0.0  # sensor missing exported as zero
    raw.loc[1, "sleep_duration_h"] = 18.0  # an 18-hour "sleep"
    raw.loc[2, "local_hour"] = np.nan  # required value missing
    raw["awakenings"] = [1, 2.5, 3, 4, 5, 6]
    raw["deep_sleep_pct"] = [20, 20, 20, 70, 20, 20]
    raw["rem_sleep_pct"] = [20, 20, 20, 40, 20, 20]
    report = validate_frame(coerce_feature_columns(raw))
    assert report.valid.tolist() == [False, False, False, False, True, True]
    by_field = {v.field: v for v in report.violations}
    assert by_field["hrv_rmssd_ms"].rows == 1
    assert by_field["hrv_rmssd_ms"].examples[0]["event_id"] == "e0"
    assert "out of range" in by_field["sleep_duration_h"].rule
    assert by_field["local_hour"].rule == "field required"
    assert by_field["awakenings"].rule == "must be an integer"
    assert by_field["rem_sleep_pct"].rule == "deep_sleep_pct + rem_sleep_pct <= 100"
    assert report.invalid_share == pytest.approx(4 / 6)


def test_unusable_tables_raise_contract_error() -> None:
    with pytest.raises(ContractError, match="hours_awake"):
        coerce_feature_columns(table().drop(columns=["hours_awake"]))
    bad = table().astype({"resting_hr_bpm": "object"})
    bad.loc[0, "resting_hr_bpm"] = "sixty"
    with pytest.raises(ContractError, match="resting_hr_bpm"):
        coerce_feature_columns(bad)
