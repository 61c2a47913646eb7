"""Read the live window for monitoring: Parquet from the blob store straight into a :class:`Window`.

:meth:`Storage.read_live_dataset` builds a full DataFrame (every column, a Python string per
row, a label lookup per row): right for retraining, several times what the monitor can afford at
a million rows. This reader

- reads only the columns the signals use, and the string columns as Arrow dictionaries decoded
  from Parquet's own dictionary pages: an integer code per row, no string per row, no hashing;
- filters by event time only the files that straddle an end of the window;
- checks ``event_id`` uniqueness with one hash pass and deduplicates only when a retried batch
  overlapped another;
- joins the feedback labels by looking each row's id up in the (small) set of labelled ids;
- converts Arrow to numpy column by column, releasing each Arrow column once converted, so the
  peak holds the window about once (no pandas detour).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fatigue_guard.contract.features import FEATURE_NAMES, FEATURES_VERSION, SEGMENT_COLUMNS
from fatigue_guard.monitoring.window import (
    ALERT_COLUMN,
    MISSING_SEGMENT,
    SCORE_COLUMN,
    Segment,
    Window,
    prepare_window,
)
from fatigue_guard.storage.blob import BlobNotFound
from fatigue_guard.storage.factory import Storage
from fatigue_guard.storage.feature_store import dedupe_by_event_id

_TIMESTAMP = pa.timestamp("us", tz="UTC")
_TEXT = ("user_id", "model_version", *SEGMENT_COLUMNS)
COLUMNS: tuple[str, ...] = (
    "event_id",
    "measured_at",
    *FEATURE_NAMES,
    SCORE_COLUMN,
    ALERT_COLUMN,
    *_TEXT,
)
# Files fetched and decoded at once: Parquet decoding releases the GIL, and a remote blob store
# answers faster in parallel; two matches the cores the monitor is sized for.
READ_THREADS = 2


def _read(storage: Storage, key: str, start: datetime, end: datetime) -> pa.Table | None:
    import pyarrow.parquet as pq

    try:
        data = storage.blobs.get(key)
    except BlobNotFound:  # erased between list and get
        return None
    table = pq.read_table(
        pa.BufferReader(data),
        columns=list(COLUMNS),
        read_dictionary=list(_TEXT),
        use_threads=False,  # parallel across files instead
    )
    del data
    bounds = pc.min_max(table["measured_at"])
    first, last = bounds["min"].as_py(), bounds["max"].as_py()
    if first is not None and first >= start and last < end:
        return table  # the whole file is in the window (the usual case): no filtered copy
    in_window = pc.and_(
        pc.greater_equal(table["measured_at"], pa.scalar(start, _TIMESTAMP)),
        pc.less(table["measured_at"], pa.scalar(end, _TIMESTAMP)),
    )
    return table.filter(in_window)


def _codes(column: pa.ChunkedArray) -> Segment:
    """Integer code per row of a dictionary column whose chunks share one dictionary; nulls get
    the last code, named :data:`MISSING_SEGMENT`."""
    values = [str(v) for v in column.chunk(0).dictionary.to_pylist()]
    null = len(values)
    codes = np.concatenate(
        [pc.fill_null(chunk.indices, null).to_numpy().astype(np.int64) for chunk in column.chunks]
    )
    if column.null_count:
        values.append(MISSING_SEGMENT)
    return Segment(codes=codes, values=values)


def _labels(
    storage: Storage, event_ids: pa.ChunkedArray, start: datetime, end: datetime
) -> np.ndarray:
    """Feedback label per row: 1.0 / 0.0, NaN where none arrived."""
    with storage.uow_factory() as uow:
        labels = uow.feedback.labels_for_window(start, end)
    out = np.full(len(event_ids), np.nan)
    if labels:
        ids = pa.array([str(k) for k in labels], type=event_ids.type)
        values = np.fromiter(labels.values(), dtype=np.float64, count=len(labels))
        where = pc.fill_null(pc.index_in(event_ids, value_set=ids), -1).to_numpy()
        found = where >= 0
        out[found] = values[where[found]]
    return out


def read_live_window(
    storage: Storage,
    start: datetime,
    end: datetime,
    model_version: str | None = None,
    features_version: int = FEATURES_VERSION,
) -> Window:
    """Rows measured in ``[start, end)`` (server and edge alike) with their feedback labels,
    as the :class:`Window` that :func:`prepare_window` would build from the same rows."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    keys = storage.feature_store.keys_between(start, end, features_version)
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        tables = [
            t for t in pool.map(lambda k: _read(storage, k, start, end), keys) if t is not None
        ]
    if not tables or not sum(t.num_rows for t in tables):
        empty = pd.DataFrame({name: pd.Series(dtype="float64") for name in COLUMNS})
        return prepare_window(empty, None, model_version)
    # One dictionary per string column across files, so a code means the same value everywhere.
    table = pa.concat_tables(tables, promote_options="default").unify_dictionaries()
    del tables
    if len(pc.unique(table["event_id"])) < table.num_rows:
        table = dedupe_by_event_id(table)  # a retried batch overlapped another
    labels = _labels(storage, table["event_id"], start, end)
    columns = {name: table.column(name) for name in table.column_names if name != "event_id"}
    rows = table.num_rows
    del table  # from here each Arrow column is freed as soon as it is converted

    def take(name: str) -> pa.ChunkedArray:
        return columns.pop(name)

    features = {name: take(name).to_numpy() for name in FEATURE_NAMES}
    scores = take(SCORE_COLUMN).to_numpy()
    alerts = pc.fill_null(take(ALERT_COLUMN), False).to_numpy()
    measured = take("measured_at").cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy()
    users = _codes(take("user_id"))
    versions = _codes(take("model_version"))
    scored = None
    if model_version is not None:  # only the monitored version's predictions are its scores
        match = [i for i, v in enumerate(versions.values) if v == str(model_version)]
        scored = versions.codes == match[0] if match else np.zeros(rows, dtype=bool)
        scores = np.where(scored, scores, np.nan)
    return Window(
        rows=rows,
        features=features,
        segments={name: _codes(take(name)) for name in SEGMENT_COLUMNS},
        scores=scores,
        alerts=alerts,
        labels=labels,
        measured_ns=measured,
        scored=scored,
        user_codes=users.codes,
        users=len(users.values),
    )
