"""Read the live window for monitoring: the blob store's Parquet, streamed into a :class:`Window`.

:meth:`Storage.read_live_dataset` builds a full DataFrame (every column, a Python string per
row, a label lookup per row): right for retraining, far more than the monitor can afford over
weeks of a large deployment (tens of millions of rows). This reader makes one streamed pass over
the window's batch files, at most :data:`READ_THREADS` files in flight, so memory never holds
the window as Arrow or as a frame:

- partitions are pruned by their ``date=`` directory and only the columns the signals use are
  decoded, the string columns as Arrow dictionaries from Parquet's own dictionary pages (an
  integer code per row, never a string per row);
- rows are filtered by event time only in the files that straddle an end of the window;
- each column of each batch is appended, as it arrives, to a file of raw values in a private
  temporary directory (under ``TMPDIR``; about 250 bytes a row), so nothing per row piles up in
  memory during the read, and each column comes back later in one allocation;
- the columns every signal needs at once (user and segment codes, time, score, alert, label)
  are then loaded in their narrowest exact type, while the feature columns, the bulk of a row,
  stay on disk and are loaded one at a time when a signal asks for one
  (:class:`SpilledColumns`): the signals go through the features one by one;
- ``event_id`` becomes a 64-bit fingerprint per row (:mod:`fatigue_guard.monitoring.event_ids`);
  the ids themselves are spilled and read back only when two fingerprints repeat (a retried
  batch that overlapped another), to deduplicate exactly;
- each row's feedback label is looked up in the (small) set of labelled ids as its file arrives.

Memory is then a few tens of bytes per row plus one feature column, instead of the whole table;
the arrays are the ones :func:`prepare_window` would build from the same rows, so every signal
computes exactly what it computes on a frame.
"""

from __future__ import annotations

import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc

from fatigue_guard.contract.features import FEATURE_NAMES, FEATURES_VERSION, SEGMENT_COLUMNS
from fatigue_guard.monitoring.event_ids import all_distinct, fingerprints
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
COLUMNS: tuple[str, ...] = (
    "event_id", "measured_at", *FEATURE_NAMES, SCORE_COLUMN, ALERT_COLUMN, *_TEXT,
)  # fmt: skip
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


class SpilledColumns(Mapping[str, np.ndarray]):
    """Float64 columns in files of raw values, each loaded when it is asked for.

    Nothing is cached: a column is in memory only while a signal holds it, and reading it
    again from the page cache costs a few tens of milliseconds, against its whole size kept
    alive until the next column. ``keep`` (the rows left by deduplication) is applied on every
    load. The temporary directory goes with this object.
    """

    def __init__(
        self,
        directory: tempfile.TemporaryDirectory[str],
        names: Iterable[str],
        rows: int,
        keep: np.ndarray | None = None,
    ) -> None:
        self._directory = directory
        self._names = tuple(names)
        self._rows = rows
        self._keep = keep

    def path(self, name: str) -> Path:
        return Path(self._directory.name) / f"{name}.bin"

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        values = np.fromfile(self.path(name), dtype=np.float64)
        assert len(values) == self._rows, f"spilled column {name} is incomplete"
        return values if self._keep is None else values[self._keep]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc only; elsewhere a no-op).

    The read converts each file's columns to small numpy arrays; once freed, glibc keeps
    those pages for reuse, some hundreds of megabytes at tens of millions of rows that the
    signals' large arrays (allocated apart, by mmap) can never reuse.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    if trim is not None:
        trim(0)


class _Codes:
    """Window-wide integer codes of a string column that arrives file by file as Arrow
    dictionary chunks: each file's (small) dictionary is mapped to codes numbered in order of
    first appearance, then its rows' indices through that map. A null is a value of its own,
    named :data:`MISSING_SEGMENT`, coded -1 until the last value is known."""

    def __init__(self) -> None:
        self.lookup: dict[str, int] = {}
        self.values: list[str] = []
        self.nulls = False

    def encode(self, column: pa.ChunkedArray) -> Iterator[np.ndarray]:
        for chunk in column.chunks:
            if not pa.types.is_dictionary(chunk.type):
                chunk = pc.dictionary_encode(chunk)
            mapping = np.empty(len(chunk.dictionary) + 1, dtype=np.int32)
            for i, value in enumerate(chunk.dictionary.to_pylist()):
                text = str(value)
                code = self.lookup.get(text)
                if code is None:
                    code = self.lookup[text] = len(self.values)
                    self.values.append(text)
                mapping[i] = code
            mapping[-1] = -1
            if chunk.null_count:
                self.nulls = True
            indices = pc.fill_null(chunk.indices, len(chunk.dictionary)).to_numpy()
            yield mapping[indices]

    def segment(self, codes: np.ndarray) -> Segment:
        values = list(self.values)
        if self.nulls:
            codes[codes < 0] = len(values)
            values.append(MISSING_SEGMENT)
        return Segment(codes=codes, values=values)


# Per-row columns other than the features, and their types on disk and in the window. Codes
# are int32, half of int64 per row: a window never holds two billion distinct users or
# segment values.
_ROW_TYPES: dict[str, type[np.generic]] = {
    SCORE_COLUMN: np.float64,
    ALERT_COLUMN: np.bool_,
    "measured_at": np.int64,
    "label": np.float64,
    "fingerprint": np.uint64,
    **dict.fromkeys(_TEXT, np.int32),
}


class _Columns:
    """The window's columns as files arrive, each appended to a file of raw values in a private
    temporary directory (nothing per row stays in memory during the read); the event ids as an
    Arrow stream beside them, read back only to deduplicate."""

    def __init__(self, labelled: tuple[pa.Array, np.ndarray] | None) -> None:
        self.directory = tempfile.TemporaryDirectory(prefix="fatigue-guard-window-")
        names = (*FEATURE_NAMES, *_ROW_TYPES)
        self.spilled = SpilledColumns(self.directory, names, 0)
        self.files: dict[str, BinaryIO] = {
            name: open(self.spilled.path(name), "wb")  # noqa: SIM115 - closed in close()
            for name in names
        }
        self._ids_path = Path(self.directory.name) / "event_ids.arrows"
        self._ids_sink = pa.OSFile(str(self._ids_path), "wb")
        self._ids_writer: pa.ipc.RecordBatchStreamWriter | None = None
        self.codes = {name: _Codes() for name in _TEXT}
        self.exact_ids = False  # an id chunk had no fingerprint: compare the strings
        self.labelled = labelled
        self.rows = 0

    def _write(self, name: str, array: np.ndarray) -> None:
        np.ascontiguousarray(array, dtype=_ROW_TYPES.get(name, np.float64)).tofile(self.files[name])

    def add(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        ids = table["event_id"].combine_chunks()
        prints = fingerprints(ids)
        if prints is None:
            self.exact_ids = True
        else:
            self._write("fingerprint", prints)
        batch = pa.record_batch([ids], names=["event_id"])
        if self._ids_writer is None:
            self._ids_writer = pa.ipc.new_stream(self._ids_sink, batch.schema)
        self._ids_writer.write_batch(batch)
        for name in _TEXT:
            for codes in self.codes[name].encode(table[name]):
                self._write(name, codes)
        for name in (*FEATURE_NAMES, SCORE_COLUMN):
            self._write(name, table[name].to_numpy())
        self._write(ALERT_COLUMN, pc.fill_null(table[ALERT_COLUMN], False).to_numpy())
        stamps = table["measured_at"].cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
        self._write("measured_at", stamps.to_numpy())
        self._write("label", self._labels(ids))

    def _labels(self, ids: pa.Array) -> np.ndarray:
        """Feedback label per row: 1.0 / 0.0, NaN where none arrived."""
        out = np.full(len(ids), np.nan)
        if self.labelled is not None:
            labelled_ids, values = self.labelled
            where = pc.fill_null(pc.index_in(ids, value_set=labelled_ids), -1).to_numpy()
            found = where >= 0
            out[found] = values[where[found]]
        return out

    def close(self) -> None:
        for file in self.files.values():
            file.close()
        if self._ids_writer is not None:
            self._ids_writer.close()
        self._ids_sink.close()

    def duplicates(self) -> np.ndarray | None:
        """Rows to keep (first of each event_id) when some id repeats, else ``None``."""
        if not self.exact_ids:
            prints = self.load("fingerprint", None)
            # Sorting integers is several times faster than a hash table of them.
            prints.sort()
            repeats = bool(np.any(prints[1:] == prints[:-1]))
            del prints
            if not repeats:
                return None
        with pa.ipc.open_stream(pa.memory_map(str(self._ids_path))) as reader:
            ids = reader.read_all()["event_id"]
        if all_distinct(ids):  # the repeat was a fingerprint collision
            return None
        return first_rows_by_event_id(ids).to_numpy()

    def load(self, name: str, rows: np.ndarray | None) -> np.ndarray:
        """Column ``name`` read back whole in one allocation, or only ``rows`` of it."""
        path = self.spilled.path(name)
        whole = np.fromfile(path, dtype=_ROW_TYPES[name])
        path.unlink()
        return whole if rows is None else whole[rows]

    def segment(self, name: str, rows: np.ndarray | None) -> Segment:
        return self.codes[name].segment(self.load(name, rows))


def _labelled(storage: Storage, start: datetime, end: datetime) -> tuple[pa.Array, np.ndarray]:
    """The window's labelled event ids and their labels (1.0 / 0.0)."""
    with storage.uow_factory() as uow:
        labels = uow.feedback.labels_for_window(start, end)
    ids = pa.array([str(k) for k in labels], type=pa.string())
    return ids, np.fromiter(labels.values(), dtype=np.float64, count=len(labels))


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
    labelled = _labelled(storage, start, end)
    columns = _Columns(labelled if len(labelled[0]) else None)
    try:
        for table in _in_order(lambda key: _read(storage, key, start, end), keys, READ_THREADS):
            if table.num_rows:
                columns.add(table)
                del table
    finally:
        columns.close()
    # Arrow's allocator keeps the pages of the files' tables for reuse; nothing Arrow is read
    # any more, and the signals need the room.
    pa.default_memory_pool().release_unused()
    _trim_heap()
    if not columns.rows:
        columns.directory.cleanup()
        empty = pd.DataFrame({name: pd.Series(dtype="float64") for name in COLUMNS})
        return prepare_window(empty, None, model_version)
    keep = columns.duplicates()
    labels = columns.load("label", keep)
    rows = len(labels)

    scores = columns.load(SCORE_COLUMN, keep)
    versions = columns.segment("model_version", keep)
    scored = None
    if model_version is not None:  # only the monitored version's predictions are its scores
        match = [i for i, v in enumerate(versions.values) if v == str(model_version)]
        scored = versions.codes == match[0] if match else np.zeros(rows, dtype=bool)
        scores = np.where(scored, scores, np.nan)
    del versions
    users = columns.segment("user_id", keep)
    return Window(
        rows=rows,
        features=SpilledColumns(columns.directory, FEATURE_NAMES, columns.rows, keep),
        segments={name: columns.segment(name, keep) for name in SEGMENT_COLUMNS},
        scores=scores,
        alerts=columns.load(ALERT_COLUMN, keep),
        labels=labels,
        measured_ns=columns.load("measured_at", keep),
        scored=scored,
        user_codes=users.codes,
        users=len(users.values),
    )
