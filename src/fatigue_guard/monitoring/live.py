"""Read the live window for monitoring: Parquet from the blob store straight into a :class:`Window`.

:meth:`Storage.read_live_dataset` builds a full DataFrame (every column, a Python string per
row, a label lookup per row): right for retraining, several times what the monitor can afford at
a million rows. This reader works file by file:

- it reads only the columns the signals use, the string columns as Arrow dictionaries decoded
  from Parquet's own dictionary pages, so a string column costs an integer code per row (mapped
  to window-wide codes through each file's small dictionary), never a string per row;
- it filters by event time only the files that straddle an end of the window;
- it converts each file to numpy as soon as it is read and concatenates at the end, so Arrow
  never holds the whole window beside its numpy copy (no pandas detour either);
- it checks ``event_id`` uniqueness (:mod:`fatigue_guard.monitoring.event_ids`) and deduplicates
  only when a retried batch overlapped another, and joins the feedback labels by looking each
  row's id up in the (small) set of labelled ids.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fatigue_guard.contract.features import FEATURE_NAMES, FEATURES_VERSION, SEGMENT_COLUMNS
from fatigue_guard.monitoring.event_ids import all_distinct
from fatigue_guard.monitoring.window import (
    ALERT_COLUMN,
    MISSING_SEGMENT,
    SCORE_COLUMN,
    Segment,
    Window,
    prepare_window,
)
from fatigue_guard.storage.blob.feature_store import first_rows_by_event_id
from fatigue_guard.storage.blob.stores import BlobNotFound
from fatigue_guard.storage.factory import Storage

_TIMESTAMP = pa.timestamp("us", tz="UTC")
_TEXT = ("user_id", "model_version", *SEGMENT_COLUMNS)
_FLOATS = (*FEATURE_NAMES, SCORE_COLUMN)
COLUMNS: tuple[str, ...] = ("event_id", "measured_at", *_FLOATS, ALERT_COLUMN, *_TEXT)
# Files fetched and decoded at once: Parquet decoding releases the GIL and a remote blob store
# answers faster in parallel; two matches the cores the monitor is sized for, and bounds the
# Arrow tables alive at any time.
READ_THREADS = 2


def _read(storage: Storage, key: str, start: datetime, end: datetime) -> pa.Table | None:
    """One batch file's rows measured in ``[start, end)`` (``None`` if it vanished)."""
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


def _in_order(
    read: Callable[[str], pa.Table | None], keys: Iterable[str], threads: int
) -> Iterator[pa.Table]:
    """``read(key)`` for each key, in order, with at most ``threads`` files in flight (a plain
    ``pool.map`` would read every file ahead and hold them all)."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending: deque[Future[pa.Table | None]] = deque()
        for key in keys:
            pending.append(pool.submit(read, key))
            if len(pending) > threads:
                table = pending.popleft().result()
                if table is not None:
                    yield table
        while pending:
            table = pending.popleft().result()
            if table is not None:
                yield table


def _codes(chunks: list[pa.Array]) -> Segment:
    """Window-wide integer codes of a string column read file by file as dictionary chunks.

    Arrow unifies the files' dictionaries (a hash pass over the small dictionaries, not over
    the rows) and remaps each file's indices; a null is a value of its own, named
    :data:`MISSING_SEGMENT`.
    """
    chunks = [c if pa.types.is_dictionary(c.type) else pc.dictionary_encode(c) for c in chunks]
    unified = pa.table({"c": pa.chunked_array(chunks)}).unify_dictionaries()["c"]
    values = [str(v) for v in unified.chunk(0).dictionary.to_pylist()]
    missing = len(values)
    codes = np.concatenate(
        [pc.fill_null(c.indices, missing).to_numpy().astype(np.int64) for c in unified.chunks]
    )
    if unified.null_count:
        values.append(MISSING_SEGMENT)
    return Segment(codes=codes, values=values)


class _Columns:
    """The window's columns, one part per file, joined at the end: floats as numpy, strings
    as Arrow dictionary chunks (an int32 index per row), event ids as Arrow strings."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {}
        self.text: dict[str, list[pa.Array]] = {name: [] for name in _TEXT}
        self.event_ids: list[pa.Array] = []
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        self.event_ids.extend(table["event_id"].chunks)
        for name in _TEXT:
            self.text[name].extend(table[name].chunks)
        # Copies, not views of Arrow buffers: a view would pin its file's Arrow memory and
        # fragment the pool that the next file reuses.
        converted = {name: np.array(table[name].to_numpy()) for name in _FLOATS}
        converted[ALERT_COLUMN] = pc.fill_null(table[ALERT_COLUMN], False).to_numpy()
        stamps = table["measured_at"].cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
        converted["measured_at"] = stamps.to_numpy()
        for name, array in converted.items():
            self.parts.setdefault(name, []).append(array)

    def take(self, name: str, rows: np.ndarray | None) -> np.ndarray:
        """Column ``name`` whole (its parts are released), or only ``rows`` of it."""
        parts = self.parts.pop(name)
        whole = parts[0] if len(parts) == 1 else np.concatenate(parts)
        del parts
        return whole if rows is None else whole[rows]

    def segment(self, name: str, rows: np.ndarray | None) -> Segment:
        segment = _codes(self.text.pop(name))
        if rows is not None:
            segment.codes = segment.codes[rows]
        return segment


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
    columns = _Columns()
    for table in _in_order(lambda key: _read(storage, key, start, end), keys, READ_THREADS):
        if table.num_rows:
            columns.add(table)
    if not columns.rows:
        empty = pd.DataFrame({name: pd.Series(dtype="float64") for name in COLUMNS})
        return prepare_window(empty, None, model_version)
    event_ids = pa.chunked_array(columns.event_ids)
    columns.event_ids.clear()
    keep = None
    if not all_distinct(event_ids):  # a retried batch overlapped another
        keep = first_rows_by_event_id(event_ids).to_numpy()
        event_ids = event_ids.take(keep)
    labels = _labels(storage, event_ids, start, end)
    del event_ids
    rows = len(labels)

    scores = columns.take(SCORE_COLUMN, keep)
    versions = columns.segment("model_version", keep)
    scored = None
    if model_version is not None:  # only the monitored version's predictions are its scores
        match = [i for i, v in enumerate(versions.values) if v == str(model_version)]
        scored = versions.codes == match[0] if match else np.zeros(rows, dtype=bool)
        scores = np.where(scored, scores, np.nan)
    users = columns.segment("user_id", keep)
    return Window(
        rows=rows,
        features={name: columns.take(name, keep) for name in FEATURE_NAMES},
        segments={name: columns.segment(name, keep) for name in SEGMENT_COLUMNS},
        scores=scores,
        alerts=columns.take(ALERT_COLUMN, keep),
        labels=labels,
        measured_ns=columns.take("measured_at", keep),
        scored=scored,
        user_codes=users.codes,
        users=len(users.values),
    )
