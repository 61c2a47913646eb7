"""Contract tables round-trip through Parquet and CSV with UTC timestamps intact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fatigue_guard.contract.features import FEATURE_NAMES
from fatigue_guard.contract.frame import ContractError
from fatigue_guard.contract.tables import read_table, write_table


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_round_trip(cohort, tmp_path: Path, suffix: str) -> None:
    frame = cohort().head(500)
    back = read_table(write_table(frame, tmp_path / f"t{suffix}"))
    assert str(back["measured_at"].dtype) == "datetime64[ns, UTC]"
    assert (back["measured_at"] == frame["measured_at"]).all()
    assert back["event_id"].tolist() == frame["event_id"].tolist()
    assert back["fatigue_event"].dtype == bool
    np.testing.assert_allclose(
        back[list(FEATURE_NAMES)].to_numpy(float), frame[list(FEATURE_NAMES)].to_numpy(float)
    )


def test_csv_offsets_are_normalised_to_utc(tmp_path: Path) -> None:
    path = tmp_path / "own.csv"
    path.write_text(
        "event_id,user_id,measured_at,sleep_duration_h,fatigue_event\n"
        "e1,007,2026-01-05T08:00:00+02:00,7.5,true\n"
        "e2,007,2026-01-05T06:00:00Z,6.0,0\n"
    )
    table = read_table(path)
    assert table["user_id"].tolist() == ["007", "007"]  # ids stay text
    expected = pd.Timestamp("2026-01-05T06:00:00", tz="UTC")
    assert (table["measured_at"] == expected).all()
    assert table["fatigue_event"].tolist() == [True, False]


def test_naive_timestamps_and_unknown_formats_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "naive.csv"
    path.write_text("event_id,user_id,measured_at\ne1,u1,2026-01-05T08:00:00\n")
    with pytest.raises(ContractError, match="offset"):
        read_table(path)
    with pytest.raises(ContractError, match="format"):
        read_table(tmp_path / "table.xlsx")
