"""Group commit: concurrent callers share one durable write, and nobody is answered early.

Two levels: :class:`GroupCommitter` with a fake writer (timing and wake-up rules, exactly), and
:class:`PredictionRecorder` on each DB backend (batching, idempotency within and across batches,
the spool fallback while the DB is down).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from fatigue_guard.storage.factory import Storage
from fatigue_guard.storage.recording.group_commit import GroupCommitter, GroupCommitterStopped
from fatigue_guard.storage.sql.tables import Prediction
from tests.storage.conftest import make_record, prediction_count, spread_records


class SlowDisk:
    """A fake batch writer: each write 'fsyncs' for ``delay_s``, then marks its items durable."""

    def __init__(self, delay_s: float = 0.02) -> None:
        self.delay_s = delay_s
        self.durable: set[int] = set()
        self.batches: list[list[int]] = []
        self.lock = threading.Lock()

    def __call__(self, items: Sequence[int]) -> list[object]:
        time.sleep(self.delay_s)
        with self.lock:
            self.durable.update(items)
            self.batches.append(list(items))
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]


# -- GroupCommitter --------------------------------------------------------------------------


def test_concurrent_submissions_share_writes_and_wake_only_when_durable() -> None:
    disk = SlowDisk()
    committer: GroupCommitter[int, int] = GroupCommitter(disk, max_batch=64)
    committer.start()
    woken_durable: list[bool] = []

    def call(i: int) -> int:
        result = committer.submit(i).result(timeout=10)
        woken_durable.append(i in disk.durable)  # the caller must see its item already durable
        return result

    try:
        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(call, range(200)))
    finally:
        committer.stop()
    assert results == [i * 10 for i in range(200)]  # each caller gets its own result
    assert all(woken_durable)
    assert sorted(i for b in disk.batches for i in b) == list(range(200))  # each written once
    # 200 requests, 20 ms per write: one write each would take 4 s; batches must be shared.
    assert len(disk.batches) <= 40, f"{len(disk.batches)} writes for 200 items"
    assert committer.stats().items == 200 and committer.stats().max_batch > 1


def test_async_waiters_of_one_batch_are_woken_together() -> None:
    disk = SlowDisk()
    committer: GroupCommitter[int, int] = GroupCommitter(disk)
    committer.start()

    async def main() -> list[int]:
        return list(await asyncio.gather(*(committer.submit_async(i) for i in range(100))))

    try:
        results = asyncio.run(main())
    finally:
        committer.stop()
    assert results == [i * 10 for i in range(100)]
    # Submitted in one tick: the first write takes one item, the second all the rest.
    assert len(disk.batches) <= 3, disk.batches


def test_a_failing_item_fails_alone_and_a_failing_batch_fails_all() -> None:
    disk = SlowDisk(delay_s=0.0)
    committer: GroupCommitter[int, int] = GroupCommitter(disk)
    committer.start()
    try:
        assert committer.submit(3).result(timeout=5) == 30
        with pytest.raises(ValueError, match="bad -1"):
            committer.submit(-1).result(timeout=5)
    finally:
        committer.stop()

    def broken(items: Sequence[int]) -> list[int]:
        raise OSError("disk on fire")

    failing: GroupCommitter[int, int] = GroupCommitter(broken)
    failing.start()
    try:
        futures = [failing.submit(i) for i in range(5)]
        for future in futures:
            with pytest.raises(OSError, match="disk on fire"):
                future.result(timeout=5)
        assert failing.stats().failed_batches >= 1
    finally:
        failing.stop()


def test_stop_writes_everything_already_submitted_then_refuses() -> None:
    disk = SlowDisk(delay_s=0.05)
    committer: GroupCommitter[int, int] = GroupCommitter(disk, max_batch=4)
    committer.start()
    futures = [committer.submit(i) for i in range(20)]
    committer.stop()
    assert [f.result(timeout=0) for f in futures] == [i * 10 for i in range(20)]
    assert all(len(b) <= 4 for b in disk.batches)
    with pytest.raises(GroupCommitterStopped):
        committer.submit(99)


def test_max_wait_gathers_a_trickle_into_one_write() -> None:
    disk = SlowDisk(delay_s=0.0)
    committer: GroupCommitter[int, int] = GroupCommitter(disk, max_wait_s=0.2)
    committer.start()
    try:
        futures = []
        for i in range(5):
            futures.append(committer.submit(i))
            time.sleep(0.01)
        assert [f.result(timeout=5) for f in futures] == [0, 10, 20, 30, 40]
    finally:
        committer.stop()
    assert len(disk.batches) == 1


# -- PredictionRecorder on a real database ---------------------------------------------------


def test_recorder_batches_concurrent_requests_into_few_commits(storage: Storage) -> None:
    storage.start()
    records = spread_records(300)
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(storage.recorder.record, records))
    assert answers == records
    assert prediction_count(storage) == 300
    stats = storage.recorder.stats()
    assert stats.group_committed_records == 300
    assert stats.group_commits < 300, "every request paid its own commit"
    assert storage.recorder.drain(timeout_s=30)


def test_first_answer_wins_within_and_across_batches(storage: Storage) -> None:
    storage.start()
    event_id = uuid.uuid4()
    first = make_record("user-1", event_id=event_id, probability=0.9)
    variants = [replace(first, fatigue_probability=p / 100) for p in range(40)]

    async def race() -> list[object]:
        # One tick: the first record and all its rivals land in (at most) two batches.
        return list(
            await asyncio.gather(*(storage.recorder.record_async(r) for r in [first, *variants]))
        )

    answers = asyncio.run(race())
    assert all(a == first for a in answers)
    assert prediction_count(storage) == 1
    # A later re-send, in a later batch, gets the same stored answer.
    assert storage.recorder.record(replace(first, fatigue_probability=0.01)) == first
    assert storage.recorder.get(event_id) == first


def test_async_recording_is_durable_when_awaited(storage: Storage) -> None:
    storage.start()
    records = spread_records(120)

    async def main() -> None:
        async def one(record: object) -> None:
            await storage.recorder.record_async(record)  # type: ignore[arg-type]
            # Visible to a fresh connection the moment the await returns: committed, not queued.
            with storage.engine.connect() as connection:
                found = connection.execute(
                    select(Prediction.event_id).where(
                        Prediction.event_id == record.event_id  # type: ignore[attr-defined]
                    )
                ).first()
            assert found is not None

        await asyncio.gather(*(one(r) for r in records))

    asyncio.run(main())
    assert storage.recorder.stats().group_commits < 120


def test_db_outage_spools_in_batches_and_replays_once(storage: Storage) -> None:
    recorder = storage.recorder
    storage.start()
    records = spread_records(200)
    real_uow = recorder._uow
    appends: list[int] = []
    real_append = recorder.spool.append

    def counting_append(batch: Sequence[object]) -> None:
        appends.append(len(batch))
        real_append(batch)  # type: ignore[arg-type]

    def unreachable(*_: object, **__: object) -> object:
        raise sa_exc.OperationalError("connect", {}, ConnectionRefusedError("DB down"))

    recorder.spool.append = counting_append  # type: ignore[method-assign]
    recorder._uow = unreachable  # type: ignore[assignment]
    real_insert = recorder._writer.add_many
    recorder._writer.add_many = unreachable  # type: ignore[method-assign]
    try:
        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(recorder.record, records[:150]))
        assert answers == records[:150]  # answered while the DB is down
        assert sum(appends) == 150 and len(appends) < 150, "one fsync per record"
        # A re-send during the outage gets the first answer and is not spooled twice.
        assert recorder.record(replace(records[5], fatigue_probability=0.0)) == records[5]
    finally:
        recorder._uow = real_uow  # type: ignore[assignment]
        recorder._writer.add_many = real_insert  # type: ignore[method-assign]
    for record in records[150:]:
        recorder.record(record)
    assert recorder.drain(timeout_s=30)
    assert prediction_count(storage) == 200
    assert not recorder.spool.has_pending()


def test_record_works_inline_before_start_and_after_stop(storage: Storage) -> None:
    before = make_record("user-2")
    assert storage.recorder.record(before) == before
    storage.start()
    storage.stop(timeout_s=5)
    after = make_record("user-2")
    assert storage.recorder.record(after) == after
    assert asyncio.run(storage.recorder.record_async(make_record("user-3"))).user_id == "user-3"
    assert prediction_count(storage) == 3
