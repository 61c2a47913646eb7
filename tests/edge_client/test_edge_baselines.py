"""The phone computes the personal baselines of its offline predictions as the server and the
simulator do: a simulated person's moments go through the reference client, online (the server
fills the baselines) until the network goes away, then on the device from its own history."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fatigue_guard.client import Backoff, FatigueClient
from fatigue_guard.contract.baselines import BASELINE_FEATURES
from fatigue_guard.contract.features import LABEL_COLUMN
from fatigue_guard.demo import request_bodies
from fatigue_guard.simulation import CohortConfig, simulate_cohort
from fatigue_guard.simulation.cohort import RAW_COLUMNS
from tests.edge_client.conftest import RestartableApi

NO_WAIT = Backoff(attempts=2, base_s=0.01, max_s=0.01)
ONLINE = 16


def test_offline_baselines_equal_the_simulators(edge_api: RestartableApi, tmp_path: Path) -> None:
    person = simulate_cohort(CohortConfig(users=1, days=12, moments_per_day=2, seed=11), raw=True)
    user = str(person["user_id"].iloc[0])
    client = FatigueClient(
        edge_api.url, edge_api.key_for(user), tmp_path / "device", user_id=user, backoff=NO_WAIT
    )
    assert client.refresh_model().status == "updated"
    served = []
    for i, (body, row) in enumerate(
        zip(request_bodies(person), person.itertuples(index=False), strict=True)
    ):
        if i == ONLINE:
            edge_api.stop()  # the network goes away: the rest is predicted on the device
        features = {k: v for k, v in body["features"].items() if k not in BASELINE_FEATURES}
        raw = {name: getattr(row, name) for name in RAW_COLUMNS}
        answer = client.predict(features, body["measured_at"], event_id=body["event_id"], raw=raw)
        served.append(answer.served_by)
        client.submit_feedback(answer.event_id, bool(getattr(row, LABEL_COLUMN)))
    assert served == ["server"] * ONLINE + ["edge"] * (len(person) - ONLINE)

    queued = client.queue.pending("event", limit=1000)
    assert len(queued) == len(person) - ONLINE
    expected = person.iloc[ONLINE:]
    for name in BASELINE_FEATURES:
        got = np.array([q.payload["features"][name] for q in queued], dtype=float)  # None: NaN
        want = expected[name].to_numpy(float)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
        # The simulator writes the report rate rounded to 6 decimals; the rest is bit-exact.
        tolerance = 5e-7 if name == "recent_fatigue_rate_14d" else 0.0
        np.testing.assert_allclose(got, want, rtol=0, atol=tolerance, err_msg=name)
    assert np.isfinite(expected[list(BASELINE_FEATURES)].to_numpy(float)).all()
    client.close()
