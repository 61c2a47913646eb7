"""The label rule, the PMSys scale check and a label CSV in place of PMSys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fatigue_guard.ingest import ImportResult, LabelRule, LabelRuleError, import_fitbit
from tests.ingest.conftest import FIXTURE, PARTICIPANTS, TIMEZONE


@pytest.mark.parametrize(
    ("text", "op", "value"),
    [
        ("<=2", "<=", 2.0),
        (" >= 4 ", ">=", 4.0),
        ("==1", "==", 1.0),
        ("!=3", "!=", 3.0),
        ("<2.5", "<", 2.5),
        (">-1", ">", -1.0),
        ("<=.5", "<=", 0.5),
    ],
)
def test_rules_that_parse(text: str, op: str, value: float) -> None:
    rule = LabelRule.parse(text)
    assert (rule.op, rule.value) == (op, value)
    assert LabelRule.parse(str(rule)) == rule


@pytest.mark.parametrize("text", ["2", "<=", "=<2", "<= two", "", "<=2 and >1", "=2", "<<2", "≤2"])
def test_rules_that_do_not(text: str) -> None:
    with pytest.raises(LabelRuleError, match="not an operator"):
        LabelRule.parse(text)


def test_a_rule_applies_to_numbers_and_leaves_missing_missing() -> None:
    scores = pd.Series([1.0, 2.0, 3.0, np.nan, 5.0])
    events = LabelRule.parse("<=2").apply(scores)
    assert events.tolist() == [True, True, False, pd.NA, False]
    assert LabelRule.parse("!=3").apply(scores).tolist() == [True, True, False, pd.NA, True]


def _scores_by_report(person: str) -> pd.Series:
    wellness = pd.read_csv(FIXTURE / person / "pmsys/wellness.csv")
    at = pd.to_datetime(wellness["effective_time_frame"], utc=True).astype("datetime64[ns, UTC]")
    return pd.Series(wellness["fatigue"].to_numpy(), index=at)


@pytest.mark.parametrize("rule", ["<=2", ">=4", "==3"])
def test_each_row_is_labelled_by_the_rule_on_its_own_report(rule: str) -> None:
    table = import_fitbit(FIXTURE, timezone=TIMEZONE, label_rule=rule).table
    parsed = LabelRule.parse(rule)
    for person in PARTICIPANTS:
        rows = table[table["user_id"] == person]
        scores = _scores_by_report(person).loc[rows["measured_at"]]
        expected = parsed.apply(scores.astype(float)).to_numpy(dtype=bool)
        np.testing.assert_array_equal(rows["fatigue_event"].to_numpy(), expected)


def test_scores_off_the_pmsys_scale_are_reported_not_labelled(
    export: Path, imported: ImportResult
) -> None:
    path = export / "p01/pmsys/wellness.csv"
    wellness = pd.read_csv(path, dtype=str)
    damaged = pd.to_datetime(wellness.loc[[10, 11, 12, 13], "effective_time_frame"], utc=True)
    were_rows = imported.table["measured_at"].isin(damaged).sum()
    assert were_rows >= 3
    wellness.loc[[10, 11, 12, 13], "fatigue"] = ["0", "6", "2.5", "tired"]
    wellness.to_csv(path, index=False)
    result = import_fitbit(export / "p01", timezone=TIMEZONE)
    reasons = {e.reason: e for e in result.exclusions}
    assert reasons["fatigue not on the PMSys scale 1-5"].rows == 3
    assert reasons["fatigue missing or not a number"].rows == 1
    assert reasons["fatigue missing or not a number"].examples[0]["raw_score"] == "tired"
    assert result.summary.loc["p01", "rows"] == 136 - were_rows


def test_a_label_csv_gives_the_same_rows_as_pmsys(tmp_path: Path, imported: ImportResult) -> None:
    """One CSV for everybody, with local wall times without an offset and another column name;
    plus a user without an export folder, reported."""
    frames = []
    for person in PARTICIPANTS:
        wellness = pd.read_csv(FIXTURE / person / "pmsys/wellness.csv")
        at = pd.to_datetime(wellness["effective_time_frame"], utc=True).dt.tz_convert(TIMEZONE)
        frames.append(
            pd.DataFrame(
                {
                    "participant": person,
                    "reported": at.dt.strftime("%Y-%m-%d %H:%M:%S.%f"),
                    "tiredness": wellness["fatigue"],
                }
            )
        )
    frames.append(
        pd.DataFrame({"participant": ["p99"], "reported": ["2020-01-01 09:00"], "tiredness": [1]})
    )
    labels = tmp_path / "labels.csv"
    pd.concat(frames).to_csv(labels, index=False)

    result = import_fitbit(
        FIXTURE,
        timezone=TIMEZONE,
        labels=labels,
        user_column="participant",
        time_column="reported",
        label_column="tiredness",
        label_rule="<=2",
    )
    pd.testing.assert_frame_equal(result.table, imported.table)
    reasons = {e.reason: e.rows for e in result.exclusions}
    assert reasons["no Fitbit export folder for this user"] == 1
    # A CSV has no known scale: PMSys' 0 reports count as scores like any other.
    assert "tiredness not on the PMSys scale 1-5" not in reasons
