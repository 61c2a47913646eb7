"""Following the production alias: poll, admin reload, refusal, disk cache.

Every test gets a private copy of the session's registry (alias moves here touch no other test)
and a live API over real HTTP with its own HOME (so its own model cache).
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from fatigue_guard.config import Settings
from fatigue_guard.serving.model_cache import MANIFEST
from tests.fixtures.models import TrainedRegistry
from tests.fixtures.services import free_port
from tests.serving.conftest import ADMIN_TOKEN, LiveApi, start_api
from tests.serving.lifecycle_helpers import clone_version, private_registry_uri, set_production

POLL_S = 0.5


def _settings(tmp_path: Path, registry: TrainedRegistry, uri: str, **kw: object) -> Settings:
    return registry.settings(
        tmp_path / "home",
        mlflow_tracking_uri=uri,
        admin_token=ADMIN_TOKEN,
        blob_flush_max_age_s=0.2,
        **kw,
    )


@pytest.fixture
def registry_uri(tmp_path: Path, trained_registry: TrainedRegistry) -> str:
    return private_registry_uri(trained_registry, tmp_path / "registry")


@pytest.fixture
def live(tmp_path: Path, trained_registry: TrainedRegistry, registry_uri: str) -> Iterator[LiveApi]:
    settings = _settings(tmp_path, trained_registry, registry_uri, model_poll_interval_s=POLL_S)
    yield from start_api(settings, trained_registry)


def predict(api: LiveApi, offset: int = 0) -> dict:
    body = {**api.bodies(1, offset=offset)[0], "event_id": str(uuid.uuid4())}
    with api.client(body["user_id"]) as client:
        response = client.post("/v1/predictions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def readyz(api: LiveApi) -> httpx.Response:
    with api.admin() as client:  # the model details need the admin token
        return client.get("/readyz")


def metrics_text(api: LiveApi) -> str:
    with api.client() as client:
        return client.get("/metrics").text


def wait_for(condition: Callable[[], bool], timeout_s: float) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout_s``."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout_s, "condition not met in time"
        time.sleep(0.05)
    return time.monotonic() - start


def served_version(api: LiveApi) -> str:
    return readyz(api).json()["checks"]["model"]["version"]


def test_poll_picks_up_a_promotion(live: LiveApi) -> None:
    first = served_version(live)
    assert predict(live)["model"]["version"] == first
    new = clone_version(live.settings, first)
    set_production(live.settings, new)
    waited = wait_for(lambda: served_version(live) == new, timeout_s=POLL_S + 5)
    assert waited < POLL_S + 2.0  # one poll interval plus load-and-check time
    assert predict(live, offset=1)["model"]["version"] == new
    model = readyz(live).json()["checks"]["model"]
    assert model["source"] == "registry"
    assert model["check"]["max_abs_diff"] <= 1e-5
    text = metrics_text(live)
    assert f'fg_model_info{{source="registry",version="{new}"}} 1.0' in text
    assert f'fg_model_info{{source="registry",version="{first}"}}' not in text
    assert "fg_model_swap_duration_seconds_count 2.0" in text  # start-up + promotion
    assert "fg_registry_up 1.0" in text


@pytest.fixture
def slow_poll(
    tmp_path: Path, trained_registry: TrainedRegistry, registry_uri: str
) -> Iterator[LiveApi]:
    """An API whose poll never fires during the test: only the admin route moves it."""
    settings = _settings(tmp_path, trained_registry, registry_uri, model_poll_interval_s=3600)
    yield from start_api(settings, trained_registry)


def test_admin_reload_swaps_without_waiting_for_the_poll(slow_poll: LiveApi) -> None:
    first = served_version(slow_poll)
    new = clone_version(slow_poll.settings, first)
    set_production(slow_poll.settings, new)
    with slow_poll.client() as anonymous:
        assert anonymous.post("/v1/admin/models/reload").status_code in (401, 403)
    assert served_version(slow_poll) == first  # nothing moves without the poll or the reload
    with slow_poll.admin() as admin:
        response = admin.post("/v1/admin/models/reload")
        assert response.status_code == 200, response.text
        assert response.json()["outcome"] == "swapped"
        assert response.json()["previous"] == first
        again = admin.post("/v1/admin/models/reload").json()
    assert again["outcome"] == "unchanged"
    assert predict(slow_poll)["model"]["version"] == new


def test_a_version_failing_its_check_is_refused_and_the_old_one_keeps_serving(
    live: LiveApi, caplog: pytest.LogCaptureFixture
) -> None:
    good = served_version(live)
    bad = clone_version(live.settings, good, golden_offset=0.05)
    with caplog.at_level("WARNING", logger="fatigue_guard.serving.model_slot"):
        set_production(live.settings, bad)
        wait_for(
            lambda: any(
                r["version"] == bad for r in readyz(live).json()["checks"]["model"]["refused"]
            ),
            timeout_s=POLL_S + 5,
        )
        time.sleep(3 * POLL_S)  # later polls see the same refused version: counted once
    assert any(f"REFUSED model version {bad}" in r.getMessage() for r in caplog.records)
    ready = readyz(live)
    assert ready.status_code == 200  # still serving: refusing a version is not an outage
    model = ready.json()["checks"]["model"]
    assert model["version"] == good
    refusal = next(r for r in model["refused"] if r["version"] == bad)
    assert "golden" in refusal["reason"]
    assert predict(live)["model"]["version"] == good
    text = metrics_text(live)
    assert f'fg_model_refusals_total{{version="{bad}"}} 1.0' in text
    assert f'fg_model_info{{source="registry",version="{good}"}} 1.0' in text
    with live.admin() as admin:  # an operator's reload retries it, and is told why it failed
        response = admin.post("/v1/admin/models/reload")
    assert response.status_code == 409
    assert "golden" in response.json()["detail"]


def test_start_from_the_disk_cache_when_the_registry_is_unreachable(
    tmp_path: Path, trained_registry: TrainedRegistry, registry_uri: str
) -> None:
    settings = _settings(tmp_path, trained_registry, registry_uri, model_poll_interval_s=POLL_S)
    for api in start_api(settings, trained_registry):  # a normal run fills the cache
        version = served_version(api)
    assert (settings.model_cache_dir / MANIFEST).is_file()
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    offline = _settings(tmp_path, trained_registry, closed, model_poll_interval_s=POLL_S)
    for api in start_api(offline, trained_registry):
        ready = readyz(api)
        assert ready.status_code == 200
        model = ready.json()["checks"]["model"]
        assert (model["version"], model["source"]) == (version, "cache")
        assert "unreachable" in model["source_detail"]
        assert model["sha256"]
        assert predict(api)["model"]["version"] == version
        time.sleep(3 * POLL_S)
        text = metrics_text(api)
        assert f'fg_model_info{{source="cache",version="{version}"}} 1.0' in text
        assert "fg_registry_up 0.0" in text
        assert "fg_registry_poll_failures_total 0.0" not in text


def test_a_corrupt_cache_is_refused_not_served(
    tmp_path: Path, trained_registry: TrainedRegistry, registry_uri: str
) -> None:
    settings = _settings(tmp_path, trained_registry, registry_uri)
    for _api in start_api(settings, trained_registry):
        pass
    onnx = next(settings.model_cache_dir.glob("*.onnx"))
    onnx.write_bytes(onnx.read_bytes()[:-100])  # truncated, as by a full disk
    closed = f"http://127.0.0.1:{free_port()}"
    for api in start_api(_settings(tmp_path, trained_registry, closed), trained_registry):
        ready = readyz(api)
        assert ready.status_code == 503
        assert "checksum" in ready.json()["checks"]["model"]["last_error"]


def test_a_registry_outage_while_running_changes_only_a_metric(live: LiveApi) -> None:
    version = served_version(live)
    store = Path(live.settings.effective_mlflow_tracking_uri.removeprefix("sqlite:///"))
    moved = store.with_name("moved.db")
    shutil.move(store, moved)
    try:
        wait_for(lambda: "fg_registry_up 0.0" in metrics_text(live), timeout_s=POLL_S + 5)
        ready = readyz(live)
        assert ready.status_code == 200
        model = ready.json()["checks"]["model"]
        assert (model["version"], model["source"], model["refused"]) == (version, "registry", [])
        assert predict(live)["model"]["version"] == version
    finally:
        shutil.move(moved, store)
    wait_for(lambda: "fg_registry_up 1.0" in metrics_text(live), timeout_s=POLL_S + 5)
