"""No row uses information from after its report: changing or deleting everything that became
known after an instant leaves every earlier row exactly as it was."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from fatigue_guard.contract.features import FEATURE_NAMES
from fatigue_guard.ingest import import_fitbit
from tests.ingest.conftest import PARTICIPANTS, TIMEZONE

ZONE = ZoneInfo(TIMEZONE)
# Midnight in Oslo: day 14 January is over at this instant, so its daily resting HR, like every
# night that ends later and every later report, is "after".
CUTOFF = datetime(2020, 1, 15, tzinfo=ZONE)
LAST_FULL_DAY = "2020-01-14"


def _local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


def _rewrite_after(person: Path, mode: str) -> None:
    """``perturb``: every value known after CUTOFF changes; ``truncate``: it disappears.

    A sleep that began before the cutoff and ended after it stays in both modes, with other
    values: that it had begun was known before the cutoff, how it went was not.
    """
    sleep = person / "fitbit/sleep.json"
    kept = []
    for log in json.loads(sleep.read_text()):
        if _local(log["endTime"]) < CUTOFF:
            kept.append(log)
        elif _local(log["startTime"]) < CUTOFF:
            log["minutesAsleep"] = max(60, log["minutesAsleep"] - 150)
            log["minutesAwake"] += 150
            kept.append(log)
        elif mode == "perturb":
            log["minutesAsleep"] //= 2
            log["mainSleep"] = not log["mainSleep"] if log["logId"] % 3 == 0 else log["mainSleep"]
            for stage in log["levels"]["summary"].values():
                stage["minutes"] = stage["minutes"] // 3
                stage["count"] += 7
            kept.append(log)
    sleep.write_text(json.dumps(kept))

    rhr = person / "fitbit/resting_heart_rate.json"
    if rhr.exists():
        days = json.loads(rhr.read_text())
        after = [d for d in days if d["dateTime"][:10] >= LAST_FULL_DAY]
        if mode == "truncate":
            days = [d for d in days if d not in after]
        for day in after:
            day["value"]["value"] += 25.0
        rhr.write_text(json.dumps(days))

    ended_after = {
        str(log["logId"])
        for log in json.loads(sleep.read_text())
        if _local(log["endTime"]) >= CUTOFF
    }
    _rewrite_csv(
        person / "fitbit/sleep_score.csv",
        lambda r: r["sleep_log_entry_id"] in ended_after or r["timestamp"][:10] >= "2020-01-15",
        lambda r: {**r, "resting_heart_rate": str(int(r["resting_heart_rate"]) + 30)},
        mode,
    )
    _rewrite_csv(
        person / "pmsys/wellness.csv",
        lambda r: (
            datetime.fromisoformat(r["effective_time_frame"].replace("Z", "+00:00")) >= CUTOFF
        ),
        lambda r: {**r, "fatigue": str(6 - int(r["fatigue"])) if r["fatigue"] != "3" else "1"},
        mode,
    )


def _rewrite_csv(path: Path, is_after, change, mode: str) -> None:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    out = [
        row if not is_after(row) else change(row)
        for row in rows
        if mode == "perturb" or not is_after(row)
    ]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(out)


@pytest.mark.parametrize("mode", ["perturb", "truncate"])
def test_rows_before_an_instant_ignore_everything_after_it(export: Path, mode: str) -> None:
    before = import_fitbit(export, timezone=TIMEZONE).table
    for person in PARTICIPANTS:
        _rewrite_after(export / person, mode)
    after = import_fitbit(export, timezone=TIMEZONE).table

    cutoff = pd.Timestamp(CUTOFF)
    early_before = before[before["measured_at"] < cutoff].reset_index(drop=True)
    early_after = after[after["measured_at"] < cutoff].reset_index(drop=True)
    assert len(early_before) > 100  # the comparison covers most of the excerpt
    pd.testing.assert_frame_equal(early_after, early_before)

    late_before = before[before["measured_at"] >= cutoff]
    late_after = after[after["measured_at"] >= cutoff]
    if mode == "truncate":
        assert late_after.empty and not late_before.empty
    else:
        # The perturbation reached the later rows: the test can see a leak when there is one.
        merged = late_before.merge(late_after, on="event_id", suffixes=("_b", "_a"))
        assert len(merged) > 20
        for name in ("sleep_duration_h", "resting_hr_bpm", "fatigue_event"):
            assert (merged[f"{name}_b"] != merged[f"{name}_a"]).mean() > 0.5, name


def test_the_first_row_after_the_instant_sees_the_last_full_day(export: Path) -> None:
    """The day-before rule in both directions: a report on 15 January uses 14 January's
    resting HR (perturbed, +25 bpm) while no report before the cutoff does."""
    before = import_fitbit(export / "p01", timezone=TIMEZONE).table.set_index("event_id")
    _rewrite_after(export / "p01", "perturb")
    after = import_fitbit(export / "p01", timezone=TIMEZONE).table.set_index("event_id")
    local_day = after["measured_at"].dt.tz_convert(TIMEZONE).dt.strftime("%Y-%m-%d")
    first = after.index[local_day == "2020-01-15"][0]
    assert after.loc[first, "resting_hr_bpm"] == pytest.approx(
        before.loc[first, "resting_hr_bpm"] + 25.0
    )
    shared = before.index.intersection(after.index)
    early = shared[before.loc[shared, "measured_at"] < pd.Timestamp(CUTOFF)]
    np.testing.assert_array_equal(
        after.loc[early, list(FEATURE_NAMES)].to_numpy(float),
        before.loc[early, list(FEATURE_NAMES)].to_numpy(float),
    )


def test_a_row_does_not_see_its_own_label(export: Path) -> None:
    """Flipping one report changes that row's label and later rows' recent fatigue rate, never
    that row's features or anything earlier."""
    before = import_fitbit(export / "p01", timezone=TIMEZONE).table
    target = before.iloc[60]
    path = export / "p01/pmsys/wellness.csv"
    wellness = pd.read_csv(path, dtype=str)
    hit = pd.to_datetime(wellness["effective_time_frame"], utc=True) == target["measured_at"]
    assert hit.sum() == 1
    wellness.loc[hit, "fatigue"] = "5" if target["fatigue_event"] else "1"
    wellness.to_csv(path, index=False)
    after = import_fitbit(export / "p01", timezone=TIMEZONE).table

    upto = before["measured_at"] <= target["measured_at"]
    features = list(FEATURE_NAMES)
    pd.testing.assert_frame_equal(after.loc[upto, features], before.loc[upto, features])
    assert after.loc[60, "fatigue_event"] != target["fatigue_event"]
    later = before["measured_at"] > target["measured_at"]
    changed = (
        after.loc[later, "recent_fatigue_rate_14d"] != before.loc[later, "recent_fatigue_rate_14d"]
    )
    assert changed.any()
