"""Timestamps are ISO 8601 strings with an offset inside a plausible window; versions are exact."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from fatigue_guard.contract.errors import validation_errors
from fatigue_guard.contract.schemas import FeedbackRequest, PredictionRequest, SyncEvent

FEATURES = {
    "sleep_duration_h": 7.2,
    "sleep_efficiency": 0.91,
    "resting_hr_bpm": 58,
    "hours_awake": 6.5,
    "local_hour": 13.25,
}
PREDICTION = {"fatigue_probability": 0.2, "alert": False, "model_version": "3"}


def _bodies(stamp: object) -> dict[type[BaseModel], tuple[str, dict[str, Any]]]:
    ids = {"event_id": str(uuid.uuid4()), "user_id": "user-1"}
    measured = {**ids, "measured_at": stamp, "features": FEATURES}
    feedback = {"event_id": ids["event_id"], "fatigue_event": True, "source": "wearable"}
    return {
        PredictionRequest: ("measured_at", measured),
        SyncEvent: ("measured_at", {**measured, "prediction": PREDICTION}),
        FeedbackRequest: ("observed_at", {**feedback, "observed_at": stamp}),
    }


def _fields(model: type[BaseModel], body: dict[str, Any], *, json_mode: bool) -> list[str]:
    # JSON mode is how a single request is parsed; Python mode is how a batch item or a sync
    # event is, after the envelope was parsed.
    with pytest.raises(ValidationError) as info:
        if json_mode:
            model.model_validate_json(json.dumps(body))
        else:
            model.model_validate(body)
    return [e["field"] for e in validation_errors(info.value)]


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


REFUSED = {
    "zero": 0,
    "epoch-milliseconds": 1_700_000_000_000,
    "epoch-seconds-float": 1_700_000_000.5,
    "boolean": True,
    "digits-as-string": "1700000000",
    "date-only": "2026-03-02",
    "no-offset": "2026-03-02T13:15:00",
    "year-20": "0020-06-01T08:00:00Z",
    "just-before-2000": "1999-12-31T23:59:59Z",
    "two-days-ahead": _iso(datetime.now(UTC) + timedelta(days=2)),
    "far-future": "2999-01-01T00:00:00+01:00",
}


@pytest.mark.parametrize("json_mode", [True, False], ids=["json", "python"])
@pytest.mark.parametrize("stamp", REFUSED.values(), ids=REFUSED.keys())
def test_refused_timestamps_are_named(stamp: object, json_mode: bool) -> None:
    for model, (field, body) in _bodies(stamp).items():
        assert _fields(model, body, json_mode=json_mode) == [field], model.__name__


ACCEPTED = {
    "start-of-window": "2000-01-01T00:00:00Z",
    "offset-pulls-it-into-window": "1999-12-31T23:30:00-01:00",
    "fractional-seconds": "2026-03-02T13:15:00.123456+01:00",
    "lowercase-separators": "2026-03-02t13:15:00z",
    "clock-a-few-hours-ahead": _iso(datetime.now(UTC) + timedelta(hours=20)),
}


@pytest.mark.parametrize("stamp", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted_timestamps_are_normalised_to_utc(stamp: str) -> None:
    for model, (field, body) in _bodies(stamp).items():
        parsed = model.model_validate_json(json.dumps(body))
        value = getattr(parsed, field)
        assert value.utcoffset() == timedelta(0)
        assert value == datetime.fromisoformat(stamp.upper())


def test_python_callers_may_pass_an_aware_datetime() -> None:
    when = datetime(2026, 3, 2, 13, 15, tzinfo=UTC)
    for model, (field, body) in _bodies(when).items():
        assert getattr(model.model_validate(body), field) == when
        naive = {**body, field: when.replace(tzinfo=None)}
        assert _fields(model, naive, json_mode=False) == [field]


@pytest.mark.parametrize("version", [" 1", "1 ", "\t1", "1\n", " "])
def test_edge_model_version_with_surrounding_whitespace_is_refused(version: str) -> None:
    _, body = _bodies("2026-03-02T13:15:00+01:00")[SyncEvent]
    body["prediction"] = {**PREDICTION, "model_version": version}
    assert _fields(SyncEvent, body, json_mode=True) == ["prediction.model_version"]


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (PredictionRequest, "measured_at"),
        (SyncEvent, "measured_at"),
        (FeedbackRequest, "observed_at"),
    ],
)
def test_window_is_documented_in_the_schema(model: type[BaseModel], field: str) -> None:
    description = model.model_json_schema()["properties"][field]["description"]
    assert "2000-01-01T00:00:00Z" in description
    assert "1 day" in description
    assert "offset" in description
