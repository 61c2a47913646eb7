"""Properties of the feature contract at the HTTP boundary, with Hypothesis, over real HTTP.

* Any vector inside the contract's ranges (and its cross-field rule) is scored: 200, a
  probability in [0, 1], and exactly one stored record holding that answer.
* Any one field outside its range is a 422 naming exactly that field, and stores nothing.
* The same vector under the same model version gets the same probability, whatever the
  event_id, timestamp or client info around it.

The ranges come from the contract itself (``FEATURES``), so a range change is tested as it
lands. One API serves the whole module; examples are bounded to keep the run short.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from fatigue_guard.contract.baselines import BASELINE_FEATURES
from fatigue_guard.contract.features import (
    FEATURES,
    SLEEP_STAGE_FIELDS,
    SLEEP_STAGE_MAX_TOTAL,
    FeatureSpec,
)
from tests.fixtures.models import TrainedRegistry
from tests.serving.conftest import LiveApi, start_api

USER = "property-user"

BOUNDED = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, trained_registry: TrainedRegistry
) -> Iterator[LiveApi]:
    settings_ = trained_registry.settings(
        tmp_path_factory.mktemp("contract-properties"),
        # Hundreds of requests on one key in a few seconds: no 429 in the way.
        rate_limit_per_s=100_000.0,
        rate_limit_burst=100_000,
    )
    yield from start_api(settings_, trained_registry)


@pytest.fixture(scope="module")
def client(live: LiveApi) -> Iterator[httpx.Client]:
    with live.client(USER) as http:
        yield http


# -- strategies, read from the contract --------------------------------------------------------


def in_range(spec: FeatureSpec) -> st.SearchStrategy[float | int]:
    if spec.integer:
        return st.integers(math.ceil(spec.minimum), math.floor(spec.maximum))
    return st.floats(
        spec.minimum,
        spec.maximum,
        exclude_max=spec.maximum_exclusive,
        allow_nan=False,
        allow_infinity=False,
    )


def out_of_range(spec: FeatureSpec) -> st.SearchStrategy[float | int]:
    """A value just or far outside the range, below or above it."""
    if spec.integer:
        below = st.integers(max_value=math.ceil(spec.minimum) - 1, min_value=-(10**9))
        above = st.integers(min_value=math.floor(spec.maximum) + 1, max_value=10**9)
        return below | above
    below = st.floats(max_value=spec.minimum, exclude_max=True, min_value=-1e12)
    above = st.floats(
        min_value=spec.maximum, exclude_min=not spec.maximum_exclusive, max_value=1e12
    )
    return below | above


@st.composite
def valid_features(draw: st.DrawFn) -> dict[str, Any]:
    """Required features always, optional ones present, absent or null."""
    features: dict[str, Any] = {}
    for spec in FEATURES:
        if spec.required:
            features[spec.name] = draw(in_range(spec))
            continue
        choice = draw(st.sampled_from(("value", "value", "absent", "null")))
        if choice == "value":
            features[spec.name] = draw(in_range(spec))
        elif choice == "null":
            features[spec.name] = None
    first, second = SLEEP_STAGE_FIELDS
    if isinstance(features.get(first), float) and isinstance(features.get(second), float):
        # Deep and REM are shares of one sleep: draw the second within what the first left.
        room = SLEEP_STAGE_MAX_TOTAL - features[first]
        features[second] = draw(st.floats(0, max(room, 0.0), allow_nan=False))
        assume(features[first] + features[second] <= SLEEP_STAGE_MAX_TOTAL)
    return features


def request_body(features: dict[str, Any], *, minutes_ago: int = 60) -> dict[str, Any]:
    measured = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return {
        "event_id": str(uuid.uuid4()),
        "user_id": USER,
        "measured_at": measured.isoformat(),
        "features": features,
    }


def _stored(live: LiveApi, event_id: str | None = None) -> int:
    query = "SELECT count(*) FROM predictions WHERE user_id = :user"
    params: dict[str, Any] = {"user": USER}
    if event_id is not None:
        query += " AND event_id = :event"
        params["event"] = uuid.UUID(event_id).hex  # SQLite keeps UUIDs as 32 hex digits
    with live.storage.engine.connect() as connection:
        return int(connection.execute(text(query), params).scalar_one())


# -- properties -------------------------------------------------------------------------------


@pytest.mark.slow
@BOUNDED
@given(features=valid_features())
def test_any_vector_inside_the_ranges_is_scored_and_stored_once(
    live: LiveApi, client: httpx.Client, features: dict[str, Any]
) -> None:
    before = _stored(live)
    body = request_body(features)
    response = client.post("/v1/predictions", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert 0.0 <= answer["fatigue_probability"] <= 1.0
    assert answer["alert"] == (answer["fatigue_probability"] >= answer["threshold"])
    assert _stored(live, body["event_id"]) == 1
    assert _stored(live) == before + 1
    record = live.storage.recorder.get(uuid.UUID(body["event_id"]))
    assert record is not None
    assert record.fatigue_probability == answer["fatigue_probability"]


@st.composite
def one_field_out_of_range(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    features = draw(valid_features())
    spec = draw(st.sampled_from(FEATURES))
    features[spec.name] = draw(out_of_range(spec))
    return spec.name, features


@pytest.mark.slow
@BOUNDED
@given(case=one_field_out_of_range())
def test_one_field_outside_its_range_is_a_422_naming_exactly_that_field(
    live: LiveApi, client: httpx.Client, case: tuple[str, dict[str, Any]]
) -> None:
    name, features = case
    before = _stored(live)
    response = client.post("/v1/predictions", json=request_body(features))
    assert response.status_code == 422, (name, features[name], response.text)
    assert response.headers["content-type"] == "application/problem+json"
    fields = [error["field"] for error in response.json()["errors"]]
    assert fields == [f"features.{name}"], (features[name], response.json())
    assert _stored(live) == before


@pytest.mark.slow
@BOUNDED
@st.composite
def complete_baselines(draw: st.DrawFn) -> dict[str, Any]:
    """A vector that carries its five personal baselines: one the device leaves out is computed
    from the person's history, which the earlier examples change, so only a vector sent whole
    is the same vector at another moment."""
    features = draw(valid_features())
    for spec in FEATURES:
        if spec.name in BASELINE_FEATURES and features.get(spec.name) is None:
            features[spec.name] = draw(in_range(spec))
    return features


@given(
    features=complete_baselines(),
    minutes_ago=st.integers(0, 60 * 24 * 30),
    platform=st.sampled_from(("ios", "android")),
)
def test_the_same_vector_and_model_version_get_the_same_probability(
    client: httpx.Client, features: dict[str, Any], minutes_ago: int, platform: str
) -> None:
    first = client.post("/v1/predictions", json=request_body(features))
    other = {**request_body(features, minutes_ago=minutes_ago), "client": {"platform": platform}}
    second = client.post("/v1/predictions", json=other)
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    a, b = first.json(), second.json()
    assert a["event_id"] != b["event_id"]  # two events, not an idempotent replay
    assert a["model"] == b["model"]
    assert a["fatigue_probability"] == b["fatigue_probability"]
    assert a["alert"] == b["alert"]
