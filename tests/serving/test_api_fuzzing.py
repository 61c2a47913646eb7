"""Schemathesis against the app's own OpenAPI document, over real HTTP, every operation.

Valid and invalid requests (both generation modes) with a device key or the admin token, as
each operation's security says. Whatever is sent: no 5xx, every 4xx is problem+json, and every
answer's status, media type, headers and body are the documented ones. The data plane is real
(SQLite and the local blob store, the recorder process), the model is the session's trained
one, and an edge bundle is published so the edge routes answer more than 404.

Bounded: a fixed number of examples per operation and mode, no shrinking, so it stays well
under a minute on the shared machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fatigue_guard.config import Settings
from fatigue_guard.lifecycle.edge_publication import publish_edge
from fatigue_guard.serving.app import create_app
from fatigue_guard.serving.problems import PROBLEM_MEDIA_TYPE
from fatigue_guard.storage.blob.stores import LocalBlobStore
from tests.fixtures.models import TrainedRegistry
from tests.serving.conftest import ADMIN_TOKEN, LiveApi, start_api

EXAMPLES_PER_OPERATION = 40
FUZZ_USER = "fuzz-user"


@pytest.fixture(scope="module")
def fuzz_api(
    tmp_path_factory: pytest.TempPathFactory, trained_registry: TrainedRegistry
) -> Iterator[LiveApi]:
    home = tmp_path_factory.mktemp("fuzz-home")
    settings = trained_registry.settings(
        home,
        admin_token=ADMIN_TOKEN,
        blob_flush_max_age_s=0.2,
        # The fuzzer sends bursts on one key: a 429 would end the request before the route.
        rate_limit_per_s=100_000.0,
        rate_limit_burst=100_000,
    )
    publish_edge(settings, LocalBlobStore(settings.local_blob_root))
    yield from start_api(settings, trained_registry)


def _device(fuzz_api: LiveApi) -> dict[str, str]:
    return {"Authorization": f"Bearer {fuzz_api.key_for(FUZZ_USER)}"}


def _document() -> dict[str, Any]:
    # Built from the code at collection time: schemathesis parametrizes by operation while
    # collecting, before any server runs (its fixture-based loader does not work with this
    # pytest). test_the_served_document_is_the_fuzzed_one ties it to what the server serves.
    return create_app(Settings(home=Path("unused-home"))).openapi()


def _fuzz_config() -> schemathesis.Config:
    config = schemathesis.Config()
    config.projects.default.generation.update(
        max_examples=EXAMPLES_PER_OPERATION, no_shrink=True, deterministic=True
    )
    return config


schema = schemathesis.openapi.from_dict(_document(), config=_fuzz_config())


def test_the_served_document_is_the_fuzzed_one(fuzz_api: LiveApi) -> None:
    with fuzz_api.client() as client:
        assert client.get("/openapi.json").json() == schema.raw_schema


def problem_json_for_client_errors(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx, documented or not, is RFC 9457 problem details naming its own status."""
    if not 400 <= response.status_code < 500:
        return None
    media_type = response.headers.get("content-type", [""])[0].split(";")[0]
    assert media_type == PROBLEM_MEDIA_TYPE, (response.status_code, media_type)
    problem = response.json()
    assert problem["status"] == response.status_code, problem
    assert {"type", "title", "detail"} <= set(problem), problem
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    problem_json_for_client_errors,
]


def _credentials(case: Any, fuzz_api: LiveApi) -> dict[str, str]:
    requirements = case.operation.definition.raw.get("security", [])
    names = {name for requirement in requirements for name in requirement}
    if "adminToken" in names:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    if "deviceKey" in names:
        return _device(fuzz_api)
    return {}


def _aim_at_the_caller(body: Any) -> None:
    """Point generated requests at the key's own user and a plausible time.

    Left alone, nearly every valid-looking body is refused for a foreign user_id (403) or a
    timestamp outside the accepted window (422) before it reaches the model and the stores.
    Only fields that are already strings are rewritten: a wrongly typed one stays wrong.
    """
    if not isinstance(body, dict):
        return
    now = datetime.now(UTC)
    if isinstance(body.get("user_id"), str):
        body["user_id"] = FUZZ_USER
    for stamp in ("measured_at", "observed_at"):
        if isinstance(body.get(stamp), str):
            body[stamp] = (now - timedelta(hours=1)).isoformat()
    for nested in ("items", "events"):
        if isinstance(body.get(nested), list):
            for item in body[nested]:
                _aim_at_the_caller(item)


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_every_operation_answers_as_documented(case: Any, fuzz_api: LiveApi) -> None:
    _aim_at_the_caller(case.body)
    case.call_and_validate(
        base_url=fuzz_api.url, headers=_credentials(case, fuzz_api), checks=CHECKS
    )


def test_the_published_edge_file_answers_as_documented(fuzz_api: LiveApi) -> None:
    """Generated versions never name the published one; these two requests do."""
    operation = schema["/v1/models/edge/files/{model_version}"]["GET"]
    with fuzz_api.client(FUZZ_USER) as client:
        version = client.get("/v1/models/edge/manifest").json()["model_version"]
    fresh = operation.Case(path_parameters={"model_version": version})
    first = fresh.call_and_validate(base_url=fuzz_api.url, headers=_device(fuzz_api), checks=CHECKS)
    assert first.status_code == 200
    etag = first.headers["etag"][0]
    cached = operation.Case(
        path_parameters={"model_version": version}, headers={"If-None-Match": etag}
    )
    again = cached.call_and_validate(
        base_url=fuzz_api.url, headers=_device(fuzz_api), checks=CHECKS
    )
    assert again.status_code == 304
