"""The request schemas built from the feature contract accept what it allows, refuse the rest."""

from __future__ import annotations

import json
import math
import uuid

import pytest
from pydantic import ValidationError

from fatigue_guard.contract.errors import validation_errors
from fatigue_guard.contract.features import FEATURE_NAMES, FEATURES, REQUIRED_FEATURES
from fatigue_guard.contract.schemas import Features, PredictionRequest


def valid_body(**features: object) -> dict[str, object]:
    base: dict[str, object] = {
        "sleep_duration_h": 7.2,
        "sleep_efficiency": 0.91,
        "resting_hr_bpm": 58,
        "hours_awake": 6.5,
        "local_hour": 13.25,
    }
    base.update(features)
    return {
        "event_id": str(uuid.uuid4()),
        "user_id": "user-1",
        "measured_at": "2026-03-02T13:15:00+01:00",
        "features": base,
    }


def errors_for(body: dict[str, object] | str) -> list[dict[str, str]]:
    raw = body if isinstance(body, str) else json.dumps(body)
    with pytest.raises(ValidationError) as info:
        PredictionRequest.model_validate_json(raw)
    return validation_errors(info.value)


def test_minimal_valid_request_leaves_optional_features_missing() -> None:
    request = PredictionRequest.model_validate_json(json.dumps(valid_body()))
    row = request.features.as_row()
    assert len(row) == len(FEATURE_NAMES)
    optional = [i for i, f in enumerate(FEATURES) if not f.required]
    assert all(math.isnan(row[i]) for i in optional)
    assert request.measured_at.utcoffset() is not None


@pytest.mark.parametrize("name", REQUIRED_FEATURES)
def test_missing_required_feature_is_named(name: str) -> None:
    body = valid_body()
    del body["features"][name]  # type: ignore[attr-defined]
    assert errors_for(body) == [{"field": f"features.{name}", "message": "field required"}]


@pytest.mark.parametrize("spec", FEATURES, ids=lambda s: s.name)
def test_every_feature_range_is_enforced_on_both_sides(spec) -> None:  # type: ignore[no-untyped-def]
    below = spec.minimum - 1
    above = spec.maximum if spec.maximum_exclusive else spec.maximum + 1
    for value in (below, above):
        errors = errors_for(valid_body(**{spec.name: value}))
        assert [e["field"] for e in errors] == [f"features.{spec.name}"]
    inside = spec.minimum if spec.integer else (spec.minimum + spec.maximum) / 2
    if spec.name == "rem_sleep_pct":
        inside = 20
    PredictionRequest.model_validate_json(json.dumps(valid_body(**{spec.name: inside})))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(literal: str) -> None:
    raw = json.dumps(valid_body()).replace(
        '"sleep_efficiency": 0.91', f'"sleep_efficiency": {literal}'
    )
    errors = errors_for(raw)
    assert errors[0]["field"] == "features.sleep_efficiency"
    assert "finite" in errors[0]["message"]


@pytest.mark.parametrize("value", ["7.5", True, [7.5], {"v": 7.5}])
def test_wrong_types_are_refused(value: object) -> None:
    errors = errors_for(valid_body(sleep_duration_h=value))
    assert [e["field"] for e in errors] == ["features.sleep_duration_h"]


def test_counts_must_be_whole_but_whole_doubles_are_fine() -> None:
    errors = errors_for(valid_body(awakenings=2.5))
    assert errors[0]["field"] == "features.awakenings"
    assert "integer" in errors[0]["message"]
    ok = PredictionRequest.model_validate_json(json.dumps(valid_body(awakenings=3.0)))
    assert ok.features.awakenings == 3


def test_deep_plus_rem_over_100_is_refused_naming_the_rule() -> None:
    errors = errors_for(valid_body(deep_sleep_pct=60, rem_sleep_pct=45))
    assert errors[0]["field"] == "features.rem_sleep_pct"
    assert "deep_sleep_pct + rem_sleep_pct <= 100" in errors[0]["message"]
    PredictionRequest.model_validate_json(
        json.dumps(valid_body(deep_sleep_pct=55, rem_sleep_pct=45))
    )


def test_unknown_feature_is_refused() -> None:
    errors = errors_for(valid_body(stress_level=3))
    assert errors == [
        {
            "field": "features.stress_level",
            "message": "unknown field (not in the feature contract or the request schema)",
        }
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("measured_at", "2026-03-02T13:15:00"),  # no offset
        ("measured_at", "yesterday"),
        ("event_id", "not-a-uuid"),
        ("user_id", ""),
    ],
)
def test_malformed_identifiers_and_timestamps_are_named(field: str, value: str) -> None:
    body = valid_body()
    body[field] = value
    assert [e["field"] for e in errors_for(body)] == [field]


def test_features_model_is_generated_from_the_contract() -> None:
    assert tuple(Features.model_fields) == FEATURE_NAMES
    for spec in FEATURES:
        assert Features.model_fields[spec.name].is_required() == spec.required
