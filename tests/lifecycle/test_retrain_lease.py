"""The retraining lease excludes a second run of the same process, not only other replicas.

A scheduled monitor and a manual trigger (or two workers) can live in one process; the lease
must not let the second in because it names the same host and pid.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fatigue_guard.config import Settings
from fatigue_guard.lifecycle.bus import MessageBus
from fatigue_guard.lifecycle.retrain import LOCK_NAME, holder_id, run_retraining
from fatigue_guard.storage.factory import build_storage


def test_a_run_of_the_same_process_is_skipped_while_another_holds_the_lease(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path, database_url=None, azure_storage_connection_string=None)
    storage = build_storage(settings)
    storage.upgrade()
    try:
        with storage.uow_factory(write=True) as uow:
            assert uow.locks.try_acquire(LOCK_NAME, holder_id(), timedelta(minutes=5))
            uow.commit()

        outcome = run_retraining(settings, storage, bus=MessageBus(), trigger="manual", reason="t")

        assert outcome.status == "skipped"
        assert "lease held" in outcome.reason
        with storage.uow_factory() as uow:
            assert uow.retrain_runs.all() == []
    finally:
        storage.close()
