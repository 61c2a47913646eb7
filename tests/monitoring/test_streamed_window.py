"""The streamed live reader against the whole-frame path: same rows, same report.

``read_live_window`` streams batch files, spills the feature columns to local files and keeps
ids as fingerprints; ``prepare_window`` builds the window from one DataFrame in memory. On the
same rows (with a retried batch that overlaps another, files that straddle the window's start
and feedback labels for some rows) every signal of the report must agree.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from fatigue_guard.contract.features import FEATURE_NAMES, LABEL_COLUMN
from fatigue_guard.monitoring import MonitorReport, live, run_monitor
from fatigue_guard.monitoring.live import SpilledColumns, read_live_window
from fatigue_guard.monitoring.window import prepare_window
from fatigue_guard.storage.factory import Storage, build_storage
from tests.monitoring.conftest import Scenario
from tests.monitoring.helpers import monitor_settings, write_live


def _signals(report: MonitorReport) -> dict[str, Any]:
    """The report without what differs by construction (window bounds, timings, ids)."""
    doc = report.as_dict()
    for key in ("id", "created_at", "window", "timings_s", "html_key"):
        doc.pop(key, None)
    return doc


def _close(a: Any, b: Any, path: str = "") -> None:
    """Equal, floats within a relative 1e-9 (the summation order of two paths may differ)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for key in a:
            _close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12, nan_ok=True), path
    else:
        assert a == b, path


@pytest.fixture
def live_store(
    tmp_path: Path, scenario_data: Callable[[str], Scenario], monkeypatch: pytest.MonkeyPatch
) -> tuple[Storage, Scenario, pd.DataFrame, pd.Timestamp, pd.Timestamp]:
    scenario = scenario_data("device_firmware")
    storage = build_storage(monitor_settings(tmp_path / "home"))
    storage.upgrade()
    # Small batches: many files, so the stream really goes file by file.
    write_live(storage.blobs, scenario.window, model_version="1", batch_rows=4_000)
    # A retried batch that overlapped another: its rows must count once on both paths.
    key = storage.blobs.list("features/")[3]
    storage.blobs.put(key.replace("bench-", "retry-"), storage.blobs.get(key))
    frame = scenario.window
    # The window starts mid-day: the first day's files straddle it and are filtered by time.
    start = frame["measured_at"].min() + timedelta(hours=13)
    end = frame["measured_at"].max() + timedelta(seconds=1)
    inside = frame[(frame["measured_at"] >= start) & (frame["measured_at"] < end)]
    # Feedback for every third row, as SQL would give it.
    labelled = inside.iloc[::3]
    ids = pa.array(labelled["event_id"].astype(str).tolist(), type=pa.string())
    values = labelled[LABEL_COLUMN].to_numpy(dtype=np.float64)
    monkeypatch.setattr(live, "_labelled", lambda *_: (ids, values))
    expected = inside.copy()
    expected[LABEL_COLUMN] = pd.array([pd.NA] * len(inside), dtype="boolean")
    expected.loc[labelled.index, LABEL_COLUMN] = labelled[LABEL_COLUMN].astype(bool)
    return storage, scenario, expected.reset_index(drop=True), start, end


def test_streamed_window_holds_the_frames_arrays(live_store: Any) -> None:
    storage, _, expected, start, end = live_store
    streamed = read_live_window(storage, start.to_pydatetime(), end.to_pydatetime(), "1")
    whole = prepare_window(expected, None, "1")
    assert isinstance(streamed.features, SpilledColumns)
    assert streamed.rows == whole.rows == len(expected)
    # Row order differs (files are read in key order): compare row by row through event time
    # and the user, which identify a row of the simulation.
    for name in FEATURE_NAMES:
        a = np.sort(np.nan_to_num(streamed.features[name], nan=-1e300))
        b = np.sort(np.nan_to_num(whole.features[name], nan=-1e300))
        np.testing.assert_array_equal(a, b, err_msg=name)
    for name in ("scores", "alerts", "measured_ns"):
        np.testing.assert_array_equal(
            np.sort(getattr(streamed, name)), np.sort(getattr(whole, name)), err_msg=name
        )
    assert np.isnan(streamed.labels).sum() == np.isnan(whole.labels).sum()
    assert np.nansum(streamed.labels) == np.nansum(whole.labels)
    assert streamed.users == whole.users
    for column, segment in whole.segments.items():
        mine = streamed.segments[column]
        assert sorted(mine.values) == sorted(segment.values)
        assert mine.codes.dtype == np.int32
        counts = dict(zip(mine.values, np.bincount(mine.codes), strict=True))
        assert counts == dict(zip(segment.values, np.bincount(segment.codes), strict=True))


def test_streamed_report_equals_whole_frame_report(live_store: Any) -> None:
    storage, scenario, expected, start, end = live_store
    settings = storage.settings
    common: dict[str, Any] = {
        "reference": scenario.reference,
        "threshold": scenario.threshold,
        "store": False,
        "html": False,
    }
    streamed = run_monitor(
        settings, now=end.to_pydatetime(), window=end - start, storage=storage, **common
    )
    whole = run_monitor(settings, current=expected, **common)
    assert streamed.rows == whole.rows == len(expected)
    assert streamed.decision.breach and streamed.performance.labels > 0
    _close(_signals(streamed), _signals(whole))


def test_spilled_columns_are_read_on_access(tmp_path: Path) -> None:
    import tempfile

    directory = tempfile.TemporaryDirectory(dir=tmp_path)
    columns = SpilledColumns(directory, ["a", "b"], 4, keep=np.array([0, 2]))
    np.arange(4, dtype=np.float64).tofile(columns.path("a"))
    np.arange(4, 8, dtype=np.float64).tofile(columns.path("b"))
    first = columns["a"]
    np.testing.assert_array_equal(first, [0.0, 2.0])
    # Read anew on every access: no column stays alive once its signal let it go.
    assert columns["a"] is not first
    np.testing.assert_array_equal(columns["b"], [4.0, 6.0])
    assert list(columns) == ["a", "b"] and len(columns) == 2
    with pytest.raises(KeyError):
        columns["c"]
