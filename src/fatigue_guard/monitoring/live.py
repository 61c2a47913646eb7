"""Read the live window for monitoring: only the columns the signals need, Arrow to numpy.

:meth:`Storage.read_live_dataset` builds a full DataFrame (every column, Python strings, a label
lookup per row): right for retraining, about 3x the memory the monitor can afford at a million
rows. This reader selects columns per file, keeps string columns dictionary-encoded (pandas
categoricals), deduplicates by ``event_id`` only when duplicates exist, and joins the feedback
labels with one vectorised index lookup.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fatigue_guard.contract.features import FEATURE_NAMES, FEATURES_VERSION, LABEL_COLUMN
from fatigue_guard.storage.blob import BlobNotFound
from fatigue_guard.storage.factory import Storage
from fatigue_guard.storage.feature_store import dedupe_by_event_id

_TIMESTAMP = pa.timestamp("us", tz="UTC")
_TEXT = ("user_id", "model_version", "device_model", "platform", "app_version")
COLUMNS: tuple[str, ...] = (
    "event_id",
    "measured_at",
    *FEATURE_NAMES,
    "probability",
    "alert",
    *_TEXT,
)


def _read(storage: Storage, key: str, start: datetime, end: datetime) -> pa.Table | None:
    import pyarrow.parquet as pq

    try:
        data = storage.blobs.get(key)
    except BlobNotFound:  # erased between list and get
        return None
    table = pq.read_table(pa.BufferReader(data), columns=list(COLUMNS))
    in_window = pc.and_(
        pc.greater_equal(table["measured_at"], pa.scalar(start, _TIMESTAMP)),
        pc.less(table["measured_at"], pa.scalar(end, _TIMESTAMP)),
    )
    return table.filter(in_window)


def read_monitor_window(
    storage: Storage, start: datetime, end: datetime, features_version: int = FEATURES_VERSION
) -> pd.DataFrame:
    """Rows measured in ``[start, end)`` (server and edge alike) with their feedback labels
    (``fatigue_event``: 1.0 / 0.0 / NaN) in the columns :func:`prepare_window` reads."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    keys = storage.feature_store.keys_between(start, end, features_version)
    tables = [t for t in (_read(storage, k, start, end) for k in keys) if t is not None]
    if not tables:
        return pd.DataFrame({name: pd.Series(dtype="float64") for name in COLUMNS})
    table = pa.concat_tables(tables, promote_options="default")
    del tables
    if pc.count_distinct(table["event_id"]).as_py() < table.num_rows:
        table = dedupe_by_event_id(table)  # a retried batch overlapped another
    event_ids = table["event_id"]
    table = table.drop_columns(["event_id"])
    for name in _TEXT:
        table = table.set_column(
            table.schema.get_field_index(name), name, pc.dictionary_encode(table[name])
        )
    frame = table.to_pandas(self_destruct=True, split_blocks=True)
    del table
    with storage.uow_factory() as uow:
        labels = uow.feedback.labels_for_window(start, end)
    values = np.full(len(frame), np.nan)
    if labels:
        ids = pd.Index(event_ids.to_numpy(zero_copy_only=False))
        where = ids.get_indexer(pd.Index([str(k) for k in labels]))
        found = where >= 0
        values[where[found]] = np.fromiter(labels.values(), dtype=np.float64)[found]
    frame[LABEL_COLUMN] = values
    return frame
