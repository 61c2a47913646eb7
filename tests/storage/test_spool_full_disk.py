"""The spool on a full disk: a failed append leaves nothing behind, and the spool goes on; with
SQL down too, the recorder refuses what it cannot make durable instead of answering it."""

from __future__ import annotations

import errno
import logging

import pytest

from fatigue_guard.storage.recording.recorder import RecordNotDurable
from fatigue_guard.storage.recording.spool import Spool
from fatigue_guard.storage.records import PredictionRecord
from tests.fixtures.full_disk import FullDisk
from tests.fixtures.services import TcpProxy
from tests.storage.conftest import StorageFactory, prediction_count, spread_records


def test_a_failed_append_leaves_no_trace_and_the_spool_goes_on(full_disk: FullDisk) -> None:
    records = spread_records(70)
    first, refused, last = records[:5], records[5:60], records[60:]
    spool = Spool(full_disk.path)
    spool.append(first)
    # Room for the start of the next append only: part of it is written before the disk fills.
    full_disk.fill(leave_bytes=4096)
    with pytest.raises(OSError) as failed:
        spool.append(refused)
    assert failed.value.errno == errno.ENOSPC
    full_disk.free()
    spool.append(last)

    replayed: list[PredictionRecord] = []
    assert spool.replay(replayed.extend) == len(first) + len(last)
    # The refused records were not answered: none of them may reach SQL, and no torn line may
    # have swallowed a record appended after them.
    assert [r.event_id for r in replayed] == [r.event_id for r in first + last]
    assert not spool.has_pending()
    assert spool.spooled_total == len(first) + len(last)


@pytest.mark.slow
@pytest.mark.postgres
def test_the_recorder_refuses_what_it_cannot_make_durable(
    postgres_proxy: tuple[TcpProxy, str],
    storage_factory: StorageFactory,
    full_disk: FullDisk,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SQL down and the spool's disk full: record() and record_many() raise RecordNotDurable
    (the API answers 503), once per refusal in the stats, one ERROR line naming the cause; the
    same records are taken once the disk is back, and stored once when SQL is."""
    proxy, url = postgres_proxy
    storage = storage_factory(url, db_connect_timeout_s=1.0, spool_replay_interval_s=3600)
    spool_dir = storage.settings.spool_dir
    spool_dir.parent.mkdir(parents=True, exist_ok=True)
    spool_dir.symlink_to(full_disk.path, target_is_directory=True)
    storage.start()
    recorder = storage.recorder
    records = spread_records(4)
    assert recorder.record(records[0]) == records[0]

    proxy.stop()
    full_disk.fill()
    with caplog.at_level(logging.ERROR, logger="fatigue_guard.storage.recording.recorder"):
        with pytest.raises(RecordNotDurable):
            recorder.record(records[1])
        with pytest.raises(RecordNotDurable):
            recorder.record_many(records[2:])
    assert recorder.stats().spool_write_failures == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "ENOSPC" in errors[0] and str(spool_dir) in errors[0]
    assert not any(r.user_id in errors[0] or str(r.event_id) in errors[0] for r in records)

    full_disk.free()
    assert recorder.record(records[1]) == records[1]  # spooled
    assert recorder.record_many(records[2:]).spooled
    proxy.start()
    assert recorder.drain(timeout_s=30)
    assert prediction_count(storage) == len(records)
