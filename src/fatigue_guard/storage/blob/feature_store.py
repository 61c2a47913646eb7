"""The blob feature store: Parquet batches of served predictions, partitioned by date.

Layout: ``features/v{features_version}/date=YYYY-MM-DD/<batch-id>.parquet``, where the
date is ``measured_at``'s UTC date. A batch spanning several dates becomes one file per date, all
named after the batch. Batch ids are deterministic (see
:mod:`fatigue_guard.storage.recording.outbox`), so a retried write replaces its own file; reads also
deduplicate by event_id as a second line of defence.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fatigue_guard.contract.features import FEATURE_NAMES, FEATURES_VERSION
from fatigue_guard.storage.blob.stores import BlobNotFound, BlobStore
from fatigue_guard.storage.records import PredictionRecord

ROOT_PREFIX = "features"
_DATE_DIR = re.compile(r"/date=(\d{4}-\d{2}-\d{2})/")

_TIMESTAMP = pa.timestamp("us", tz="UTC")
SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("measured_at", _TIMESTAMP, nullable=False),
        pa.field("received_at", _TIMESTAMP, nullable=False),
        *(pa.field(name, pa.float64()) for name in FEATURE_NAMES),
        pa.field("probability", pa.float64(), nullable=False),
        pa.field("alert", pa.bool_(), nullable=False),
        pa.field("threshold", pa.float64()),
        pa.field("model_name", pa.string()),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("served_by", pa.string(), nullable=False),
        pa.field("device_model", pa.string()),
        pa.field("platform", pa.string()),
        pa.field("app_version", pa.string()),
    ]
)


def version_prefix(features_version: int = FEATURES_VERSION) -> str:
    return f"{ROOT_PREFIX}/v{features_version}/"


def partition_key(features_version: int, day: date, batch_id: str) -> str:
    return f"{version_prefix(features_version)}date={day.isoformat()}/{batch_id}.parquet"


def records_to_table(records: Sequence[PredictionRecord]) -> pa.Table:
    """One Arrow table in :data:`SCHEMA`; features in contract order, missing ones null."""
    columns: dict[str, list[object]] = {
        "event_id": [str(r.event_id) for r in records],
        "user_id": [r.user_id for r in records],
        "measured_at": [r.measured_at.astimezone(UTC) for r in records],
        "received_at": [r.received_at.astimezone(UTC) for r in records],
    }
    for name in FEATURE_NAMES:
        columns[name] = [r.features.get(name) for r in records]
    columns |= {
        "probability": [r.fatigue_probability for r in records],
        "alert": [r.alert for r in records],
        "threshold": [r.threshold for r in records],
        "model_name": [r.model_name for r in records],
        "model_version": [r.model_version for r in records],
        "served_by": [r.served_by for r in records],
        "device_model": [r.device_model for r in records],
        "platform": [r.platform for r in records],
        "app_version": [r.app_version for r in records],
    }
    return pa.table(columns, schema=SCHEMA)


def _to_parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _from_parquet(data: bytes) -> pa.Table:
    return pq.read_table(pa.BufferReader(data))


def first_rows_by_event_id(event_ids: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Row number of the first occurrence of each distinct id, ascending.

    Split out of :func:`dedupe_by_event_id` so the monitor, which holds its columns as numpy
    arrays rather than one table, can apply the same deduplication to each of them.
    """
    index = pa.array(range(len(event_ids)), pa.int64())
    firsts = (
        pa.table({"event_id": event_ids, "_row": index})
        .group_by("event_id", use_threads=False)
        .aggregate([("_row", "min")])
        .column("_row_min")
    )
    return pc.take(firsts, pc.sort_indices(firsts)).combine_chunks()


def dedupe_by_event_id(table: pa.Table) -> pa.Table:
    """Keep the first row of each event_id (a retried batch may overlap another)."""
    if table.num_rows == 0:
        return table
    return table.take(first_rows_by_event_id(table["event_id"]))


class FeatureStore:
    """Writes and reads feature batches on any
    :class:`~fatigue_guard.storage.blob.stores.BlobStore`."""

    def __init__(self, blobs: BlobStore, *, read_threads: int = 4) -> None:
        self.blobs = blobs
        self._read_threads = read_threads

    def __repr__(self) -> str:
        return f"FeatureStore({self.blobs!r})"

    def write_batch(self, batch_id: str, records: Sequence[PredictionRecord]) -> list[str]:
        """Write ``records`` as one Parquet file per (features_version, date); return the keys.

        Idempotent: writing the same batch again overwrites the same keys with the same rows.
        """
        groups: dict[tuple[int, date], list[PredictionRecord]] = defaultdict(list)
        for record in records:
            groups[(record.features_version, record.measured_at.astimezone(UTC).date())].append(
                record
            )
        keys = []
        for (version, day), group in sorted(groups.items()):
            key = partition_key(version, day, batch_id)
            self.blobs.put(key, _to_parquet(records_to_table(group)))
            keys.append(key)
        return keys

    def keys_between(
        self, start: datetime, end: datetime, features_version: int = FEATURES_VERSION
    ) -> list[str]:
        """Batch files whose date partition may hold rows measured in ``[start, end)``."""
        first = start.astimezone(UTC).date()
        last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
        keys = []
        for key in self.blobs.list(version_prefix(features_version)):
            match = _DATE_DIR.search(key)
            if (
                match
                and first <= date.fromisoformat(match.group(1)) <= last
                and key.endswith(".parquet")
            ):
                keys.append(key)
        return keys

    def read_key(self, key: str) -> pa.Table:
        """One batch file as written (no filtering, no dedup)."""
        return _from_parquet(self.blobs.get(key))

    def _read_keys(self, keys: Iterable[str]) -> list[pa.Table]:
        def fetch(key: str) -> pa.Table | None:
            try:
                return _from_parquet(self.blobs.get(key))
            except BlobNotFound:  # deleted by an erasure between list and get
                return None

        with ThreadPoolExecutor(max_workers=self._read_threads) as pool:
            return [t for t in pool.map(fetch, keys) if t is not None]

    def read(
        self, start: datetime, end: datetime, features_version: int = FEATURES_VERSION
    ) -> pa.Table:
        """Every record measured in ``[start, end)``, one row per event_id, by measured_at."""
        tables = self._read_keys(self.keys_between(start, end, features_version))
        if not tables:
            return SCHEMA.empty_table()
        table = pa.concat_tables(tables, promote_options="default")
        in_window = pc.and_(
            pc.greater_equal(table["measured_at"], pa.scalar(start, _TIMESTAMP)),
            pc.less(table["measured_at"], pa.scalar(end, _TIMESTAMP)),
        )
        table = dedupe_by_event_id(table.filter(in_window))
        return table.take(pc.sort_indices(table, [("measured_at", "ascending")]))

    def erase_user(self, user_id: str) -> tuple[int, int]:
        """Remove ``user_id``'s rows from every batch file (rewriting or deleting the files).

        Returns ``(rows_removed, files_changed)``. Files are rewritten whole because Parquet is
        immutable; each rewrite is an atomic put, so readers never see a half-erased file.
        """
        rows_removed = files_changed = 0
        for key in self.blobs.list(f"{ROOT_PREFIX}/"):
            if not key.endswith(".parquet"):
                continue
            try:
                table = _from_parquet(self.blobs.get(key))
            except BlobNotFound:
                continue
            keep = pc.not_equal(table["user_id"], pa.scalar(user_id))
            kept = table.filter(keep)
            removed = table.num_rows - kept.num_rows
            if not removed:
                continue
            if kept.num_rows:
                self.blobs.put(key, _to_parquet(kept))
            else:
                self.blobs.delete(key)
            rows_removed += removed
            files_changed += 1
        return rows_removed, files_changed
