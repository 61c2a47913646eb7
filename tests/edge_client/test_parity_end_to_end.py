"""Edge vs server through the real paths: the client's on-device model against the API's answers
for the same 10,000 vectors with nulls (probabilities within 1e-5, identical alerts).

(Exporter parity, ONNX vs scikit-learn, and the compact forest against its own scikit-learn
form are covered in tests/edge; this is what a user sees: phone answer vs server answer.)
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from fatigue_guard.client import FatigueClient
from fatigue_guard.contract.baselines import BASELINE_FEATURES
from fatigue_guard.contract.features import FEATURES
from fatigue_guard.model.vectors import contract_vectors
from tests.edge_client.conftest import RestartableApi

N_VECTORS = 10_000
N_THROUGH_PREDICT = 200  # also through FatigueClient.predict offline (queue writes: fsync each)
TOLERANCE = 1e-5
USER = "parity-user"
START = datetime(2025, 3, 1, tzinfo=UTC)


def as_features(row: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec, value in zip(FEATURES, row.tolist(), strict=True):
        if math.isnan(value):
            out[spec.name] = None
        else:
            out[spec.name] = int(value) if spec.integer else value
    return out


def server_answers(api: RestartableApi, vectors: np.ndarray) -> list[dict[str, Any]]:
    """The served model's answers, 1000 per ``/v1/predictions:batch`` call."""
    headers = {"Authorization": f"Bearer {api.key_for(USER)}"}
    answers: list[dict[str, Any]] = []
    with httpx.Client(base_url=api.url, headers=headers, timeout=60) as http:
        for start in range(0, len(vectors), 1000):
            items = [
                {
                    "event_id": str(uuid.uuid4()),
                    "user_id": USER,
                    "measured_at": (START + timedelta(minutes=start + i)).isoformat(),
                    "features": as_features(row),
                }
                for i, row in enumerate(vectors[start : start + 1000])
            ]
            body = http.post("/v1/predictions:batch", json={"items": items}).json()
            assert body["failed"] == 0, body["items"][:3]
            answers.extend(item["result"] for item in body["items"])
    return answers


def test_edge_and_server_agree_on_10000_vectors_with_nulls(
    edge_api_as_sent: RestartableApi, tmp_path: Path
) -> None:
    edge_api = edge_api_as_sent
    vectors = contract_vectors(N_VECTORS, seed=2024)
    assert np.isnan(vectors).any(axis=1).mean() > 0.2, "parity must cover vectors with nulls"
    served = server_answers(edge_api, vectors)
    server_p = np.array([a["fatigue_probability"] for a in served])
    server_alert = np.array([a["alert"] for a in served])

    client = FatigueClient(edge_api.url, edge_api.key_for(USER), tmp_path, user_id=USER)
    assert client.refresh_model().status == "updated"
    model = client.models.current
    assert model is not None
    assert model.version == served[0]["model"]["version"]
    # The on-device path: the same predictor and threshold that predict() uses offline.
    edge_p = model.predictor.predict_proba(vectors).astype(np.float64)
    edge_alert = edge_p >= model.threshold
    diff = np.abs(edge_p - server_p)
    assert diff.max() <= TOLERANCE, f"max |edge - server| = {diff.max():.2e}"
    assert np.array_equal(edge_alert, server_alert)
    assert 0 < edge_alert.sum() < N_VECTORS, "the threshold must split the vectors"
    if model.manifest.kind == "full":
        assert model.threshold == served[0]["threshold"]

    # End to end through predict() with the server gone: same answers, served_by="edge". The
    # phone fills a baseline left null from its own history, so these vectors carry all five.
    edge_api.stop()
    baseline_columns = [i for i, spec in enumerate(FEATURES) if spec.name in BASELINE_FEATURES]
    complete = np.flatnonzero(~np.isnan(vectors[:, baseline_columns]).any(axis=1))
    assert len(complete) >= N_THROUGH_PREDICT
    for n, i in enumerate(complete[:N_THROUGH_PREDICT]):
        answer = client.predict(as_features(vectors[i]), START + timedelta(minutes=n))
        assert answer.served_by == "edge"
        assert abs(answer.fatigue_probability - server_p[i]) <= TOLERANCE
        assert answer.alert == server_alert[i]
    assert client.pending().events == N_THROUGH_PREDICT
    client.close()
    edge_api.start()  # the fixture's teardown stops it again
