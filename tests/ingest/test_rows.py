"""What rows the importer builds from the PMData excerpt, and what they hold."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fatigue_guard.contract.features import FEATURE_NAMES, FEATURES_VERSION, ID_COLUMNS
from fatigue_guard.contract.frame import coerce_feature_columns, validate_frame
from fatigue_guard.contract.tables import read_table, write_table
from fatigue_guard.ingest import ImportResult, import_fitbit
from fatigue_guard.ingest.build import NOT_IN_EXPORT, TARGET_FEATURES_VERSION
from tests.ingest.conftest import FIXTURE, PARTICIPANTS, TIMEZONE
from tests.ingest.reference import reference_rows

# Pinned from the excerpt; tests/ingest/reference.py derives the same rows from the files.
EXPECTED_ROWS = {"p01": 136, "p04": 100, "p13": 31}
CHECKED = (
    "fatigue_event",
    "sleep_duration_h",
    "resting_hr_bpm",
    "hours_awake",
    "sleep_midpoint_shift_h",
    "sleep_debt_7d_h",
    "resting_hr_delta_bpm",
    "recent_fatigue_rate_14d",
)


@pytest.mark.parametrize("person", PARTICIPANTS)
def test_rows_match_a_plain_reading_of_the_files(imported: ImportResult, person: str) -> None:
    """Same reports become rows, with the same label and the same baselines, as the rules read
    one report at a time (first valid report of each local day, not during a logged main
    sleep, after a main sleep that ended within 24 h, with a resting HR)."""
    expected = reference_rows(FIXTURE / person, TIMEZONE)
    table = imported.table[imported.table["user_id"] == person]
    assert len(expected) == len(table) == EXPECTED_ROWS[person]
    assert imported.summary.loc[person, "rows"] == EXPECTED_ROWS[person]
    got = table.set_index(table["measured_at"].map(lambda t: t.to_pydatetime()))
    assert set(got.index) == set(expected)
    for name in CHECKED:
        want = np.array(
            [np.nan if expected[t][name] is None else expected[t][name] for t in got.index], float
        )
        np.testing.assert_allclose(
            got[name].to_numpy(float), want, rtol=1e-9, atol=1e-9, err_msg=name
        )
    # Every baseline has values once the history is long enough.
    assert got["recent_fatigue_rate_14d"].notna().mean() > 0.8


def test_every_report_is_a_row_or_has_a_reason(imported: ImportResult) -> None:
    reports = {p: len(pd.read_csv(FIXTURE / p / "pmsys/wellness.csv")) for p in PARTICIPANTS}
    summary = imported.summary
    assert summary["reports"].to_dict() == reports
    assert (
        summary["rows"] + summary["excluded"] + summary["contract_invalid"]
    ).to_dict() == reports
    assert len(imported.rejected) == sum(reports.values()) - len(imported.table)
    assert imported.rejected["rejected_because"].notna().all()
    by_reason = {e.reason: e.rows for e in imported.exclusions}
    # p13 sends a second report on some days; p04 and p13 miss many nights.
    assert by_reason["a second report on the same local day (the first is kept)"] >= 5
    assert by_reason["no main sleep ended in the 24 h before the report"] > 30
    # p13 has no daily resting HR file and the nights without a sleep score have no resting HR.
    assert "p13: fitbit/resting_heart_rate.json not found" in imported.notes


def test_one_row_by_hand(imported: ImportResult) -> None:
    """p01 reported at 2019-11-02 10:00:01Z after the night 00:09:30-07:19:30 local (log
    24486013387: 378 min asleep of 430 in bed, 52 awake, 26 wake bouts, deep 36, REM 83)."""
    row = imported.table.set_index("measured_at").loc[pd.Timestamp("2019-11-02T10:00:01.229Z")]
    assert row["user_id"] == "p01"
    assert row["sleep_duration_h"] == pytest.approx(378 / 60)
    assert row["sleep_efficiency"] == pytest.approx(378 / 430)
    assert row["waso_min"] == 52
    assert row["awakenings"] == 26
    assert row["deep_sleep_pct"] == pytest.approx(100 * 36 / 378)
    assert row["rem_sleep_pct"] == pytest.approx(100 * 83 / 378)
    # 07:19:30 in Oslo is 06:19:30Z.
    assert row["hours_awake"] == pytest.approx((3 * 3600 + 40 * 60 + 31.229) / 3600)
    assert row["local_hour"] == pytest.approx(11 + 1.229 / 3600)
    # The day before's daily value, not the day's own (known only once 2 November is over).
    assert row["resting_hr_bpm"] == pytest.approx(53.74107360839844)
    assert row["fatigue_event"]  # fatigue 2
    # The second day of the export: no history yet for any baseline.
    for name in ("sleep_debt_7d_h", "sleep_midpoint_shift_h", "resting_hr_delta_bpm"):
        assert np.isnan(row[name])


def test_missing_features_stay_missing(imported: ImportResult) -> None:
    table = imported.table
    for name in NOT_IN_EXPORT:
        assert table[name].isna().all(), name
    # Baselines appear once there are three earlier days, never before.
    first = table.sort_values("measured_at").groupby("user_id").head(3)
    assert first["resting_hr_delta_bpm"].isna().all()


def test_a_classic_log_has_no_stage_shares(export: Path) -> None:
    """Fitbit writes a stage-less "classic" log when it cannot score stages: no deep or REM
    share, and its wakefulness comes as "awake" plus "restless" bouts."""
    path = export / "p01/fitbit/sleep.json"
    logs = json.loads(path.read_text())
    log = next(entry for entry in logs if entry["logId"] == 24486013387)
    log["type"] = "classic"
    log["levels"]["summary"] = {
        "asleep": {"count": 0, "minutes": 378},
        "awake": {"count": 3, "minutes": 20},
        "restless": {"count": 9, "minutes": 32},
    }
    path.write_text(json.dumps(logs))
    table = import_fitbit(export / "p01", timezone=TIMEZONE).table
    row = table.set_index("measured_at").loc[pd.Timestamp("2019-11-02T10:00:01.229Z")]
    assert np.isnan(row["deep_sleep_pct"]) and np.isnan(row["rem_sleep_pct"])
    assert row["awakenings"] == 12
    assert row["sleep_duration_h"] == pytest.approx(378 / 60)
    assert table["deep_sleep_pct"].notna().sum() == len(table) - 1


def test_the_table_meets_the_contract_and_reads_back(
    imported: ImportResult, tmp_path: Path
) -> None:
    table = imported.table
    assert list(table.columns) == [*ID_COLUMNS, *FEATURE_NAMES, "fatigue_event"]
    report = validate_frame(coerce_feature_columns(table))
    assert report.invalid_rows == 0
    assert (table["hours_awake"] >= 0).all() and (table["hours_awake"] <= 24).all()
    assert table["event_id"].is_unique
    assert all(uuid.UUID(e).version == 8 for e in table["event_id"])
    for suffix in (".csv", ".parquet"):
        back = read_table(write_table(table, tmp_path / f"pm{suffix}"))
        assert back["event_id"].tolist() == table["event_id"].tolist()
        assert back["measured_at"].equals(table["measured_at"])
        np.testing.assert_allclose(
            back[list(FEATURE_NAMES)].to_numpy(float), table[list(FEATURE_NAMES)].to_numpy(float)
        )
        assert back["fatigue_event"].tolist() == table["fatigue_event"].tolist()


def test_event_ids_are_stable_across_imports(imported: ImportResult) -> None:
    again = import_fitbit(FIXTURE / "p01", timezone=TIMEZONE)
    assert (
        again.table["event_id"].tolist()
        == imported.table.loc[imported.table["user_id"] == "p01", "event_id"].tolist()
    )


def test_the_importer_targets_this_contract_version() -> None:
    # A contract change must be checked against the importer's feature definitions.
    assert TARGET_FEATURES_VERSION == FEATURES_VERSION
