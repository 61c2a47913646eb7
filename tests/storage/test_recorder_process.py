"""The recorder in a child process: same answers, same durability, survives losing the child."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from fatigue_guard.storage.factory import Storage
from fatigue_guard.storage.recording.recorder_process import (
    RecorderCallFailed,
    RecorderProcess,
    RecorderUnavailable,
)
from fatigue_guard.storage.records import PredictionRecord
from tests.fixtures.waiting import wait_until
from tests.storage.conftest import (
    BASE_TIME,
    StorageFactory,
    make_record,
    prediction_count,
    spread_records,
)


@pytest.fixture
def linked(database_url: str, storage_factory: StorageFactory) -> tuple[Storage, RecorderProcess]:
    storage = storage_factory(database_url)
    recorder = RecorderProcess(storage.settings, local=storage.recorder)
    recorder.start()
    yield storage, recorder
    recorder.stop()


def test_answers_are_stored_before_they_come_back(
    linked: tuple[Storage, RecorderProcess],
) -> None:
    storage, recorder = linked
    records = spread_records(300)
    stored_when_answered: list[int] = []

    async def main() -> list[PredictionRecord]:
        gate = asyncio.Semaphore(16)

        async def one(record: PredictionRecord) -> PredictionRecord:
            async with gate:
                answer = await recorder.record_async(record)
            if record is records[-1]:
                stored_when_answered.append(prediction_count(storage))
            return answer

        return await asyncio.gather(*(one(r) for r in records))

    assert asyncio.run(main()) == records
    assert prediction_count(storage) == 300
    assert stored_when_answered and stored_when_answered[0] >= 1
    # Idempotent: a re-send gets the first answer, from any entry point.
    resent = replace(records[0], fatigue_probability=0.0)
    assert recorder.record(resent) == records[0]
    assert asyncio.run(recorder.record_async(resent)) == records[0]
    fresh = spread_records(3)
    result = recorder.record_many([*fresh, records[1]])
    assert set(result.accepted) == {r.event_id for r in fresh}
    assert result.duplicates == [records[1].event_id]
    assert recorder.get(fresh[0].event_id) == fresh[0]
    assert prediction_count(storage) == 303
    # Concurrent requests shared commits, and the counters reach the API process.
    wait_until(lambda: recorder.stats().group_committed_records >= 301, timeout_s=5)
    stats = recorder.stats()
    assert stats.group_committed_records >= 301
    assert stats.group_commits < stats.group_committed_records


def test_stop_commits_and_flushes_everything(
    database_url: str, storage_factory: StorageFactory
) -> None:
    storage = storage_factory(database_url, blob_flush_max_records=10_000, blob_flush_max_age_s=60)
    recorder = RecorderProcess(storage.settings, local=storage.recorder)
    recorder.start()
    for record in spread_records(40):
        recorder.record(record)
    # Nothing was due before: the stop starts the shipper process (seconds of imports on a busy
    # machine), and ships only within its timeout.
    recorder.stop(timeout_s=60)
    assert storage.recorder.flusher.backlog() == 0
    assert prediction_count(storage) == 40


def test_the_child_ships_batches_while_it_records(
    database_url: str, storage_factory: StorageFactory
) -> None:
    """In the child, batches are shipped by the shipper process and the flusher's claims and
    done-marks are run by the commit loop, while records keep arriving."""
    storage = storage_factory(database_url, blob_flush_max_records=20, outbox_poll_interval_s=0.1)
    recorder = RecorderProcess(storage.settings, local=storage.recorder)
    recorder.start()
    try:
        records = spread_records(150)

        async def main() -> list[PredictionRecord]:
            return list(await asyncio.gather(*(recorder.record_async(r) for r in records)))

        assert asyncio.run(main()) == records
        wait_until(lambda: recorder.stats().flushed_records >= 140, timeout_s=60)
        assert recorder.stats().flush_failures == 0
    finally:
        recorder.stop()
    assert storage.recorder.flusher.backlog() == 0
    window = (BASE_TIME - timedelta(days=1), BASE_TIME + timedelta(days=5))
    stored = storage.feature_store.read(*window)["event_id"].to_pylist()
    assert sorted(map(str, stored)) == sorted(str(r.event_id) for r in records)


def test_a_killed_child_is_replaced_and_nothing_answered_is_lost(
    linked: tuple[Storage, RecorderProcess],
) -> None:
    storage, recorder = linked
    first_pid = recorder.pid
    assert first_pid is not None
    answered: list[PredictionRecord] = []
    failed: list[PredictionRecord] = []
    stop = threading.Event()

    def load(user: str) -> None:
        n = 0
        while not stop.is_set():
            record = make_record(user, seed=n)
            n += 1
            try:
                assert recorder.record(record) == record
                answered.append(record)
            except (RecorderUnavailable, RecorderCallFailed):
                failed.append(record)

    threads = [threading.Thread(target=load, args=(f"user-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    os.kill(first_pid, signal.SIGKILL)
    wait_until(
        lambda: recorder.pid != first_pid and recorder.stats().group_committed_records > 0,
        timeout_s=60,
    )
    time.sleep(0.5)  # some load on the new child
    stop.set()
    for thread in threads:
        thread.join(10)
    assert recorder.restarts == 1 and recorder.pid not in (None, first_pid)
    # Every answered record is stored; an unanswered one may or may not be, and its retry (same
    # event_id, as a client would send it) gets a stored answer either way.
    for record in failed:
        assert recorder.record(record) == record
    assert prediction_count(storage) == len(answered) + len(failed)


_API_PROCESS = """
import sys
from pathlib import Path
from fatigue_guard.storage.factory import build_storage
from fatigue_guard.storage.recording.recorder_process import RecorderProcess
from tests.storage.conftest import spread_records, storage_settings

storage = build_storage(storage_settings(Path(sys.argv[1]), database_url=sys.argv[2] or None))
recorder = RecorderProcess(storage.settings, local=storage.recorder)
recorder.start()
for record in spread_records(50):
    recorder.record(record)
print(recorder.pid, flush=True)
sys.stdin.read()  # until killed
"""


def test_the_child_exits_when_the_api_process_is_killed(
    database_url: str, storage_factory: StorageFactory, tmp_path: Path
) -> None:
    """No orphan: the child reads end-of-file, finishes and exits; what was answered stays."""
    storage = storage_factory(database_url)  # migrates; the "API process" below uses it too
    api = subprocess.Popen(
        [sys.executable, "-c", _API_PROCESS, str(storage.settings.home_dir), database_url],
        cwd=Path(__file__).parents[2],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert api.stdout is not None
        child = int(api.stdout.readline())
        api.kill()
        api.wait(10)
        wait_until(lambda: not _alive(child), timeout_s=30)
        assert not _alive(child), "the recorder process outlived its API process"
    finally:
        if api.poll() is None:
            api.kill()
    assert prediction_count(storage) == 50


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def test_a_child_that_will_not_start_is_retried_and_records_go_inline_meanwhile(
    linked: tuple[Storage, RecorderProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    storage, recorder = linked
    monkeypatch.setattr(
        "fatigue_guard.storage.recording.recorder_process.RESPAWN_BACKOFF_S", (0.2, 0.4)
    )
    real_spawn = RecorderProcess._spawn
    attempts: list[float] = []

    def flaky(self: RecorderProcess) -> None:
        attempts.append(time.monotonic())
        if len(attempts) <= 2:
            raise RuntimeError("disk full")
        real_spawn(self)

    monkeypatch.setattr(RecorderProcess, "_spawn", flaky)
    first = recorder.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: attempts, timeout_s=10, poll_s=0.01)
    inline = make_record("user-inline")
    assert recorder.record(inline) == inline  # no child: written by the API process itself
    wait_until(lambda: len(attempts) >= 3 and recorder.pid != first, timeout_s=70)
    assert len(attempts) == 3 and recorder.pid not in (None, first)
    assert attempts[2] - attempts[1] >= attempts[1] - attempts[0] >= 0.2  # backing off
    after = make_record("user-after")
    assert recorder.record(after) == after
    assert prediction_count(storage) == 2


def test_event_loop_records_survive_a_killed_child(
    linked: tuple[Storage, RecorderProcess],
) -> None:
    """The event loop reads its answers itself; a child killed mid-load fails only records it
    had not answered, and those answered before it died reach their callers."""
    storage, recorder = linked
    first_pid = recorder.pid
    assert first_pid is not None
    answered: list[PredictionRecord] = []
    failed: list[PredictionRecord] = []

    async def load(user: str, until: float) -> None:
        n = 0
        while time.monotonic() < until:
            record = make_record(user, seed=n)
            n += 1
            try:
                assert await recorder.record_async(record) == record
                answered.append(record)
            except (RecorderUnavailable, RecorderCallFailed):
                failed.append(record)

    async def main() -> None:
        until = time.monotonic() + 3.0
        tasks = [asyncio.create_task(load(f"user-{i}", until)) for i in range(8)]
        await asyncio.sleep(0.7)
        os.kill(first_pid, signal.SIGKILL)
        await asyncio.gather(*tasks)

    asyncio.run(main())
    wait_until(lambda: recorder.pid not in (None, first_pid), timeout_s=60)
    assert answered and recorder.restarts == 1
    for record in failed:
        assert recorder.record(record) == record
    assert prediction_count(storage) == len(answered) + len(failed)
    # The new child answers the next loop too.
    after = make_record("user-after")
    assert asyncio.run(recorder.record_async(after)) == after


def test_two_event_loops_at_once_both_get_their_answers(
    linked: tuple[Storage, RecorderProcess],
) -> None:
    """The first loop reads the answer pipe; a second one running meanwhile (e.g. a test
    client's) is answered through the control pipe instead."""
    storage, recorder = linked
    results: dict[str, list[PredictionRecord]] = {}

    def run_loop(user: str) -> None:
        records = [make_record(user, seed=n) for n in range(100)]

        async def main() -> list[PredictionRecord]:
            return list(await asyncio.gather(*(recorder.record_async(r) for r in records)))

        results[user] = asyncio.run(main())
        assert results[user] == records

    threads = [threading.Thread(target=run_loop, args=(f"loop-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == ["loop-0", "loop-1"]
    assert prediction_count(storage) == 200
