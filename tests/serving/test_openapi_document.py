"""The OpenAPI document is usable by tools and tells the truth about what the API answers.

Every ``$ref`` resolves, the document validates, every operation names who may call it, and
every error status the app answers (the ones the other API tests provoke, provoked here again)
is documented for that operation, with a body that matches the documented schema.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate

from fatigue_guard.serving.openapi import OPERATIONS
from fatigue_guard.serving.problems import PROBLEM_MEDIA_TYPE
from tests.fixtures.models import TrainedRegistry
from tests.serving.conftest import ADMIN_TOKEN, LiveApi, start_api

JSON = {"Content-Type": "application/json"}
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _document(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/openapi.json", timeout=10)
    assert response.status_code == 200
    return response.json()


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"not a local ref: {ref}"
    node: Any = document
    for part in ref[2:].split("/"):
        key = unquote(part).replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and key in node, f"{ref} does not resolve"
        node = node[key]
    return node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def test_the_document_validates_and_every_ref_resolves(api: LiveApi) -> None:
    document = _document(api.url)
    validate(document)
    refs = set(_refs(document))
    assert refs, "the document has no refs at all: the test would prove nothing"
    for ref in sorted(refs):
        _resolve(document, ref)
    # Request bodies share the contract's definitions instead of repeating them per route.
    assert "#/components/schemas/Features" in refs


def test_every_operation_says_who_may_call_it_and_how_it_fails(api: LiveApi) -> None:
    document = _document(api.url)
    schemes = document["components"]["securitySchemes"]
    assert {"deviceKey", "adminToken"} <= set(schemes)
    documented = {(method, path) for method, path, _ in _operations(document)}
    assert documented == set(OPERATIONS), "a route is missing from serving/openapi.py"
    for method, path, operation in _operations(document):
        assert "security" in operation, (method, path)
        for requirement in operation["security"]:
            assert set(requirement) <= set(schemes), (method, path)
        for status, response in operation["responses"].items():
            if int(status) < 400 or path == "/readyz":
                continue
            content = response["content"]
            assert list(content) == [PROBLEM_MEDIA_TYPE], (method, path, status)
            assert content[PROBLEM_MEDIA_TYPE]["schema"] == {"$ref": "#/components/schemas/Problem"}
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "instance", "errors"} <= set(problem["properties"])
    device = document["paths"]["/v1/predictions"]["post"]
    assert {"deviceKey"} in [set(r) for r in device["security"]]
    assert {"401", "403", "409", "413", "415", "422", "429", "503"} <= set(device["responses"])
    admin = document["paths"]["/v1/admin/status"]["get"]
    assert admin["security"] == [{"adminToken": []}]


class Conformance:
    """Checks answers against the document: the status is listed, the body fits its schema."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.seen: set[tuple[str, str, int]] = set()

    def check(self, method: str, path: str, response: httpx.Response) -> None:
        status = response.status_code
        self.seen.add((method, path, status))
        operation = self.document["paths"][path][method]
        assert str(status) in operation["responses"], (method, path, status, response.text)
        documented = operation["responses"][str(status)].get("content", {})
        media_type = response.headers.get("content-type", "").split(";")[0]
        if not documented:
            return
        assert media_type in documented, (method, path, status, media_type)
        schema = documented[media_type].get("schema")
        if schema and media_type.endswith("json"):
            # The components ride along so that the schema's refs resolve against them.
            root = {**schema, "components": self.document["components"]}
            jsonschema.Draft202012Validator(root).validate(response.json())


def _other_users(api: LiveApi) -> tuple[dict[str, Any], dict[str, Any]]:
    bodies = api.bodies(200, offset=50)
    first = bodies[0]
    second = next(b for b in bodies if b["user_id"] != first["user_id"])
    return first, second


def test_the_errors_the_app_answers_are_documented(api: LiveApi) -> None:
    conformance = Conformance(_document(api.url))
    check = conformance.check
    first, second = _other_users(api)
    user = first["user_id"]
    plain = {"Content-Type": "text/plain"}
    feedback = {
        "event_id": first["event_id"],
        "fatigue_event": True,
        "source": "self_report",
        "observed_at": first["measured_at"],
    }
    bad_features = {**first["features"], "hours_awake": -1}
    edge_event = {
        **{k: first[k] for k in ("user_id", "measured_at", "features")},
        "event_id": str(uuid.uuid4()),
        "prediction": {"fatigue_probability": 0.5, "alert": False, "model_version": "1"},
    }
    with api.client() as anonymous:
        for method, path in OPERATIONS:
            if "{" not in path and method != "delete":
                check(method, path, anonymous.request(method.upper(), path))  # 401 or public
        bad_key = {"Authorization": "Bearer fgk_0000_not-a-key"}
        check("get", "/v1/me", anonymous.get("/v1/me", headers=bad_key))
    with api.client(user) as client:
        check("post", "/v1/feedback", client.post("/v1/feedback", json=feedback))  # 404
        check("post", "/v1/predictions", client.post("/v1/predictions", json=first))
        check("post", "/v1/feedback", client.post("/v1/feedback", json=feedback))  # 201
        check("post", "/v1/feedback", client.post("/v1/feedback", json=feedback))  # 200
        check("post", "/v1/predictions", client.post("/v1/predictions", json=second))  # 403
        check(
            "post",
            "/v1/predictions",
            client.post("/v1/predictions", json={**first, "features": bad_features}),
        )
        for path in ("/v1/predictions", "/v1/predictions:batch", "/v1/feedback", "/v1/sync"):
            check("post", path, client.post(path, content=json.dumps(first), headers=plain))
            not_json = client.post(path, content=b"{not json", headers=JSON)
            check("post", path, not_json)
            check("post", path, client.post(path, json={"nonsense": 1}))
        batch = {"items": [first, second, {**first, "features": bad_features}]}
        check("post", "/v1/predictions:batch", client.post("/v1/predictions:batch", json=batch))
        sync = {"events": [edge_event, {"event_id": "x"}]}
        check("post", "/v1/sync", client.post("/v1/sync", json=sync))
        check("get", "/v1/me", client.get("/v1/me"))
        manifest = client.get("/v1/models/edge/manifest")  # none published: 404
        check("get", "/v1/models/edge/manifest", manifest)
        edge_file = "/v1/models/edge/files/{model_version}"
        check("get", edge_file, client.get("/v1/models/edge/files/999"))
        check("get", "/v1/admin/status", client.get("/v1/admin/status"))  # 403
    with api.client(second["user_id"]) as client:
        taken = {**second, "event_id": first["event_id"]}
        check("post", "/v1/predictions", client.post("/v1/predictions", json=taken))  # 409
    with api.admin() as admin:
        check("get", "/readyz", admin.get("/readyz"))
        check("get", "/v1/admin/status", admin.get("/v1/admin/status"))
        check("post", "/v1/admin/models/reload", admin.post("/v1/admin/models/reload"))
        erase = "/v1/admin/users/{user_id}"
        check("delete", erase, admin.delete("/v1/admin/users/-not-an-id"))  # 422
        check("delete", erase, admin.delete(f"/v1/admin/users/{user}"))
    seen_errors = {(m, p, s) for m, p, s in conformance.seen if s >= 400}
    expected = {("post", "/v1/predictions", status) for status in (401, 403, 409, 415, 422)} | {
        ("post", "/v1/feedback", 404),
        ("get", "/v1/admin/status", 401),
        ("get", "/v1/admin/status", 403),
        ("delete", "/v1/admin/users/{user_id}", 422),
        ("get", "/v1/models/edge/files/{model_version}", 404),
    }
    assert expected <= seen_errors, expected - seen_errors


@pytest.fixture
def bare(tmp_path: Path, trained_registry: TrainedRegistry) -> Iterator[LiveApi]:
    """No model to serve (an empty registry), tight limits: the 413, 429 and 503 answers."""
    settings = trained_registry.settings(
        tmp_path / "home",
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'empty-mlflow.db'}",
        admin_token=ADMIN_TOKEN,
        max_body_bytes=4096,
        rate_limit_per_s=0.01,
        rate_limit_burst=4,
    )
    yield from start_api(settings, trained_registry)


def test_the_limits_and_outages_the_app_answers_are_documented(
    bare: LiveApi, tmp_path: Path, trained_registry: TrainedRegistry
) -> None:
    conformance = Conformance(_document(bare.url))
    check = conformance.check
    body = bare.bodies(1)[0]
    big = {"items": [body] * 20}
    with bare.client() as anonymous:
        check("get", "/readyz", anonymous.get("/readyz"))  # 503: no model
    with bare.client(body["user_id"]) as client:
        check("post", "/v1/predictions", client.post("/v1/predictions", json=body))  # 503
        check("post", "/v1/predictions:batch", client.post("/v1/predictions:batch", json=big))
        for _ in range(4):
            check("get", "/v1/me", client.get("/v1/me"))
    with bare.admin() as admin:
        check("post", "/v1/admin/models/reload", admin.post("/v1/admin/models/reload"))  # 503
    seen = {(m, p, s) for m, p, s in conformance.seen}
    expected = {
        ("get", "/readyz", 503),
        ("post", "/v1/predictions", 503),
        ("post", "/v1/predictions:batch", 413),
        ("get", "/v1/me", 429),
        ("post", "/v1/admin/models/reload", 503),
    }
    assert expected <= seen, expected - seen
    closed = trained_registry.settings(
        tmp_path / "closed",
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'empty-mlflow-2.db'}",
        admin_token=None,
    )
    for api in start_api(closed, trained_registry):
        disabled = Conformance(_document(api.url))
        with api.admin() as admin:
            disabled.check("get", "/v1/admin/status", admin.get("/v1/admin/status"))
        assert ("get", "/v1/admin/status", 404) in disabled.seen
