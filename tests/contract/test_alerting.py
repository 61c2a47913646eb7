"""One alert rule for the server and the phone: an advisory version never alerts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np

from fatigue_guard.contract.alerting import ADVISORY_THRESHOLD, decide_alert, parse_alerting
from fatigue_guard.contract.features import FEATURE_NAMES
from fatigue_guard.contract.schemas import PredictionRequest
from fatigue_guard.serving.model_slot import LoadedModel
from fatigue_guard.serving.scoring import alerting_of, response_body, score_requests


class Certain:
    """A forest whose trees all agree: probability exactly 1.0, at the advisory threshold."""

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return np.ones(len(features))


def test_an_advisory_version_never_alerts_even_at_probability_one() -> None:
    assert decide_alert(1.0, ADVISORY_THRESHOLD, "advisory") is False
    assert decide_alert(1.0, ADVISORY_THRESHOLD, "on") is True
    assert decide_alert(0.4, 0.5, "on") is False
    assert (parse_alerting("advisory"), parse_alerting(None), parse_alerting("x")) == (
        "advisory",
        "on",
        "on",
    )


def test_served_answers_of_an_advisory_version_say_so() -> None:
    request = PredictionRequest.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "user_id": "u1",
            "measured_at": datetime.now(UTC).isoformat(),
            "features": {
                **dict.fromkeys(FEATURE_NAMES),
                "sleep_duration_h": 7.0,
                "sleep_efficiency": 0.9,
                "resting_hr_bpm": 60.0,
                "hours_awake": 10.0,
                "local_hour": 18.0,
            },
        }
    )
    for alerting, alert in (("advisory", False), ("on", True)):
        model = LoadedModel("m", "3", ADVISORY_THRESHOLD, 1, Certain(), alerting=alerting)
        [record] = score_requests([request], model)
        body = response_body(record, alerting_of(record, model))
        assert (body["alert"], body["alerting"], body["fatigue_probability"]) == (
            alert,
            alerting,
            1.0,
        )
