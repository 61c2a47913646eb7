"""The SQLite writer lock: turns in arrival order, re-entrant, owner-checked."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from fatigue_guard.storage.factory import build_storage
from fatigue_guard.storage.sql.writer_lock import WriterLock
from tests.fixtures.waiting import wait_until
from tests.storage.conftest import make_record, storage_settings


def test_a_waiting_writer_goes_before_the_holder_comes_back() -> None:
    """The starvation case: under load the group-commit writer releases and re-acquires at
    once; the flusher, already waiting, must get the next turn."""
    lock = WriterLock()
    order: list[str] = []
    lock.acquire()
    waiting = threading.Event()

    def flusher() -> None:
        waiting.set()
        lock.acquire()
        order.append("flusher")
        lock.release()

    thread = threading.Thread(target=flusher)
    thread.start()
    waiting.wait()
    wait_until(lambda: lock._cond._waiters, timeout_s=5, poll_s=0.001)  # type: ignore[attr-defined]
    assert lock._cond._waiters, "the flusher is queued"  # type: ignore[attr-defined]
    lock.release()
    lock.acquire()  # straight back, as a busy writer does
    order.append("writer")
    lock.release()
    thread.join(5)
    assert order == ["flusher", "writer"]


def test_turns_follow_arrival_order() -> None:
    lock = WriterLock()
    lock.acquire()
    order: list[int] = []
    threads = []
    for n in range(5):

        def take(n: int = n) -> None:
            lock.acquire()
            order.append(n)
            lock.release()

        thread = threading.Thread(target=take)
        thread.start()
        threads.append(thread)
        # The next one arrives only once this one is queued.
        wait_until(lambda n=n: len(lock._cond._waiters) == n + 1, timeout_s=5, poll_s=0.001)  # type: ignore[attr-defined]
        assert len(lock._cond._waiters) == n + 1  # type: ignore[attr-defined]
    lock.release()
    for thread in threads:
        thread.join(5)
    assert order == [0, 1, 2, 3, 4]


def test_reentrant_for_its_owner_and_refuses_other_releasers() -> None:
    lock = WriterLock()
    lock.acquire()
    lock.acquire()  # a writer opening a second write transaction must not wait for itself
    lock.release()
    errors: list[BaseException] = []

    def intruder() -> None:
        try:
            lock.release()
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=intruder)
    thread.start()
    thread.join(5)
    assert len(errors) == 1
    got_it = threading.Event()

    def other() -> None:
        lock.acquire()
        got_it.set()
        lock.release()

    thread = threading.Thread(target=other)
    thread.start()
    assert not got_it.wait(0.1), "still held once: one release of two acquires"
    lock.release()
    thread.join(5)
    assert got_it.is_set()
    with pytest.raises(RuntimeError):
        lock.release()


def test_request_and_flusher_writes_take_turns_on_sqlite(tmp_path: Path) -> None:
    """Every writer of the data plane goes through the lock: while one write transaction is
    open, a prediction's commit and the flusher's claim wait for it instead of meeting
    SQLite's sleeping busy handler."""
    storage = build_storage(storage_settings(tmp_path))
    storage.upgrade()
    storage.start()
    try:
        storage.recorder.record(make_record("user-1"))  # something for the flusher to claim
        done: list[str] = []
        with storage.uow_factory(write=True):
            record = threading.Thread(
                target=lambda: (
                    storage.recorder.record(make_record("user-2")),
                    done.append("record"),
                )
            )
            flush = threading.Thread(
                target=lambda: (
                    storage.recorder.flusher.flush_once(force=True),
                    done.append("flush"),
                )
            )
            record.start()
            record.join(0.3)
            assert done == [], "the prediction was committed while another writer held the lock"
            flush.start()
            flush.join(0.3)
            assert done == []
        record.join(10)
        flush.join(10)
        assert sorted(done) == ["flush", "record"]
        assert storage.recorder.flusher.stats.flushed_records >= 1
    finally:
        storage.stop()
        storage.close()
