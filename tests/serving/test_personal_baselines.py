"""Personal baselines computed by the API equal the simulator's, exactly: zero training/serving
skew. A simulated person's history is replayed through real HTTP (raw measurements and feedback,
in time order, baseline features left out) on PostgreSQL, half on one API process and half on a
second, fresh one that only has SQL to go on (a restart, or another replica). A batch's items
see the nights of the items before them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from sqlalchemy import func, select

from fatigue_guard.config import Settings
from fatigue_guard.contract.baselines import BASELINE_FEATURES
from fatigue_guard.contract.features import LABEL_COLUMN
from fatigue_guard.contract.schemas import PredictionRequest
from fatigue_guard.demo import request_bodies
from fatigue_guard.serving.personal_baselines import (
    FEATURE_BITS,
    PersonalBaselines,
    computed_names,
)
from fatigue_guard.simulation import CohortConfig, simulate_cohort
from fatigue_guard.simulation.cohort import RAW_COLUMNS
from fatigue_guard.storage.factory import build_storage
from fatigue_guard.storage.sql.personal_history import PersonalHistoryStore, user_key
from fatigue_guard.storage.sql.tables import PersonalDay
from tests.fixtures.models import TrainedRegistry
from tests.fixtures.waiting import wait_until
from tests.serving.conftest import ADMIN_TOKEN, LiveApi, start_api

SENT_AS_IS = 7  # this row sends its resting-HR delta itself: used as sent, not computed


@contextmanager
def _api(settings: Any, registry: TrainedRegistry) -> Iterator[LiveApi]:
    started = start_api(settings, registry)
    api = next(started)
    try:
        yield api
    finally:
        next(started, None)


def _replay(api: LiveApi, rows: pd.DataFrame, keys: dict[str, str], sent_event: str) -> None:
    """Each moment's request (baselines left out, raw measurements given), then its feedback."""
    api.keys = keys
    with api.client(str(rows["user_id"].iloc[0])) as client:
        for body, row in zip(request_bodies(rows), rows.itertuples(index=False), strict=True):
            for name in BASELINE_FEATURES:
                body["features"][name] = None
            if row.event_id == sent_event:
                body["features"]["resting_hr_delta_bpm"] = 42.5
            body["raw"] = {name: getattr(row, name) for name in RAW_COLUMNS}
            assert client.post("/v1/predictions", json=body).status_code == 200
            feedback = {
                "event_id": body["event_id"],
                "fatigue_event": bool(getattr(row, LABEL_COLUMN)),
                "source": "self_report",
                "observed_at": body["measured_at"],
            }
            assert client.post("/v1/feedback", json=feedback).status_code == 201


def test_api_baselines_equal_the_simulators_across_a_restart(
    tmp_path: Path, trained_registry: TrainedRegistry, postgres_url: str
) -> None:
    person = simulate_cohort(CohortConfig(users=1, days=20, moments_per_day=2, seed=11), raw=True)
    sent_event = str(person["event_id"].iloc[SENT_AS_IS])
    settings = trained_registry.settings(
        tmp_path, admin_token=ADMIN_TOKEN, blob_flush_max_age_s=0.2, database_url=postgres_url
    )
    half = len(person) // 2
    keys: dict[str, str] = {}
    with _api(settings, trained_registry) as first:
        _replay(first, person.iloc[:half], keys, sent_event)
    with _api(settings, trained_registry) as second:  # nothing cached: history from SQL only
        _replay(second, person.iloc[half:], keys, sent_event)
        start = person["measured_at"].min() - timedelta(days=1)
        end = person["measured_at"].max() + timedelta(days=1)

        def recorded() -> pd.DataFrame:
            return second.storage.feature_store.read(start, end).to_pandas()

        wait_until(lambda: len(recorded()) == len(person), timeout_s=20)
        stored = recorded().set_index("event_id").loc[person["event_id"]]

        expected = person.set_index("event_id")[list(BASELINE_FEATURES)].copy()
        expected.loc[sent_event, "resting_hr_delta_bpm"] = 42.5
        for name in BASELINE_FEATURES:
            got, want = stored[name].to_numpy(float), expected[name].to_numpy(float)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
            # The simulator writes the report rate rounded to 6 decimals; the rest is bit-exact.
            tolerance = 5e-7 if name == "recent_fatigue_rate_14d" else 0.0
            np.testing.assert_allclose(got, want, rtol=0, atol=tolerance, err_msg=name)
        assert np.isfinite(stored["recent_fatigue_rate_14d"].to_numpy(float)).sum() > 20

        # Which baselines the server computed is kept per event, for training.
        history = PersonalHistoryStore(second.storage.uow_factory)
        sent = computed_names(history.server_computed(uuid.UUID(sent_event)) or 0)
        assert "resting_hr_delta_bpm" not in sent and "hrv_rmssd_ratio" in sent
        last = history.server_computed(uuid.UUID(str(person["event_id"].iloc[-1])))
        assert last == sum(FEATURE_BITS.values())

        # Erasure takes the person's history with it.
        user = str(person["user_id"].iloc[0])
        with httpx.Client(
            base_url=second.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as admin:
            assert admin.delete(f"/v1/admin/users/{user}").status_code == 200
        with second.storage.uow_factory() as uow:
            assert uow.session is not None
            left = uow.session.execute(
                select(func.count()).where(PersonalDay.user_key == user_key(user))
            ).scalar_one()
        assert left == 0


def test_a_batch_item_sees_the_nights_of_the_earlier_items(tmp_path: Path) -> None:
    """A phone uploading a week at once: each item's baselines count the items before it."""
    person = simulate_cohort(CohortConfig(users=1, days=8, moments_per_day=1, seed=3), raw=True)
    settings = Settings(home=tmp_path, database_url=None, azure_storage_connection_string=None)
    storage = build_storage(settings)
    storage.upgrade()
    baselines = PersonalBaselines(
        PersonalHistoryStore(storage.uow_factory), ttl_s=60, max_people=10
    )
    requests = []
    for body, row in zip(request_bodies(person), person.itertuples(index=False), strict=True):
        body["features"].update(dict.fromkeys(BASELINE_FEATURES))
        body["raw"] = {name: getattr(row, name) for name in RAW_COLUMNS}
        requests.append(PredictionRequest.model_validate(body))
    filled = asyncio.run(baselines.fill(requests))
    nightly = [name for name in BASELINE_FEATURES if name != "recent_fatigue_rate_14d"]
    got = np.array([[getattr(f.request.features, n) for n in nightly] for f in filled], float)
    want = person[nightly].to_numpy(float)
    np.testing.assert_array_equal(got, want)  # NaN where the simulator's are NaN, else equal
    assert np.isfinite(got[-1]).all()
    storage.close()
