"""Model distribution: conditional GETs (ETag / 304), device-key auth, verification before use
(a tampered file is refused and the old model kept), and a real promotion reaching the client."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import onnx
import pytest

from fatigue_guard.client import FatigueClient
from fatigue_guard.edge.bundle import EdgeBundle, file_url, model_key, write_bundle
from fatigue_guard.edge.manifest import build_manifest
from fatigue_guard.lifecycle.bus import MessageBus
from fatigue_guard.lifecycle.edge_publication import (
    PublishedEdge,
    edge_publisher,
    publish_edge,
)
from fatigue_guard.lifecycle.gate import DeploymentEvent, promote
from fatigue_guard.registry import get_model_version
from fatigue_guard.registry.tracking import configure_mlflow
from fatigue_guard.storage.blob.stores import LocalBlobStore
from tests.edge_client.conftest import RestartableApi
from tests.edge_client.registry_helpers import register_tree_prefix
from tests.fixtures.models import TrainedRegistry
from tests.serving.lifecycle_helpers import private_registry_uri

USER = "refresh-user"


class TamperingTransport(httpx.BaseTransport):
    """Flips one byte of every edge model file in transit (a corrupted or forged download)."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        if not request.url.path.startswith("/v1/models/edge/files/") or response.status_code != 200:
            return response
        data = bytearray(response.read())
        data[len(data) // 2] ^= 0xFF
        return httpx.Response(200, headers=response.headers, content=bytes(data))


def test_manifest_and_file_need_a_device_key(edge_api: RestartableApi) -> None:
    with httpx.Client(base_url=edge_api.url) as anonymous:
        for path in ("/v1/models/edge/manifest", file_url("1")):
            assert anonymous.get(path).status_code == 401
            bad = {"Authorization": "Bearer fgk_0000_not-a-key"}
            assert anonymous.get(path, headers=bad).status_code == 401


def test_manifest_and_file_are_conditional_on_their_etag(
    edge_api: RestartableApi, published_edge: tuple[PublishedEdge, bytes]
) -> None:
    published, data = published_edge
    headers = {"Authorization": f"Bearer {edge_api.key_for(USER)}"}
    with httpx.Client(base_url=edge_api.url, headers=headers) as http:
        manifest = http.get("/v1/models/edge/manifest")
        assert manifest.status_code == 200
        body = manifest.json()
        assert body["model_version"] == published.manifest.model_version
        assert body["kind"] in ("full", "compact")
        assert body["sha256"] == hashlib.sha256(data).hexdigest()
        assert body["size_bytes"] == len(data)
        etag = manifest.headers["etag"]
        again = http.get("/v1/models/edge/manifest", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""

        file = http.get(body["url"])
        assert file.status_code == 200 and file.content == data
        assert file.headers["etag"] == f'"{body["sha256"]}"'
        cached = http.get(body["url"], headers={"If-None-Match": file.headers["etag"]})
        assert cached.status_code == 304 and cached.content == b""
        assert http.get(file_url("999")).status_code == 404


def test_a_corrupt_stored_file_is_not_served(edge_api: RestartableApi) -> None:
    blobs = LocalBlobStore(edge_api.settings.local_blob_root)
    version = "1"
    blobs.put(model_key(version), blobs.get(model_key(version))[:-10])
    headers = {"Authorization": f"Bearer {edge_api.key_for(USER)}"}
    response = httpx.get(edge_api.url + file_url(version), headers=headers)
    assert response.status_code == 503


def test_tampered_download_is_refused_and_the_old_model_kept(
    edge_api: RestartableApi, published_edge: tuple[PublishedEdge, bytes], tmp_path: Path
) -> None:
    published, data = published_edge
    key = edge_api.key_for(USER)
    device = tmp_path / "device"
    with FatigueClient(edge_api.url, key, device, user_id=USER) as client:
        assert client.refresh_model().status == "updated"
        assert client.refresh_model().status == "unchanged"  # manifest 304
    old = client.model_version
    # A new version (other bytes: same forest, another doc string) is published, but its bytes
    # arrive altered.
    model = onnx.load_model_from_string(data)
    model.doc_string += " (republished)"
    new_data = model.SerializeToString()
    newer = build_manifest(
        new_data,
        model_version="999",
        threshold=published.manifest.threshold,
        url=file_url("999"),
        kind=published.manifest.kind,
    )
    write_bundle(LocalBlobStore(edge_api.settings.local_blob_root), EdgeBundle(newer, new_data))
    with FatigueClient(edge_api.url, key, device, transport=TamperingTransport()) as client:
        result = client.refresh_model()
        assert result.status == "refused" and "sha256" in (result.reason or "")
        assert client.model_version == old
    # After a restart the old, verified model is still the one in use; an honest download works.
    with FatigueClient(edge_api.url, key, device) as client:
        assert client.model_version == old
        assert client.refresh_model().status == "updated"
        assert client.model_version == "999"


@pytest.mark.slow
def test_a_promotion_reaches_the_client_at_its_next_refresh(
    trained_registry: TrainedRegistry, tmp_path: Path
) -> None:
    # A private copy of the registry: this promotion must not move other tests' production.
    settings = trained_registry.settings(
        tmp_path / "home",
        mlflow_tracking_uri=private_registry_uri(trained_registry, tmp_path / "registry"),
        gate_recall_tolerance=0.99,
        gate_precision_tolerance=0.99,
    )
    bus = MessageBus()
    bus.subscribe(DeploymentEvent, edge_publisher(settings))
    api = RestartableApi(settings)
    try:
        publish_edge(settings, LocalBlobStore(settings.local_blob_root))  # export-edge
        api.start()
        key = api.key_for(USER)
        with FatigueClient(api.url, key, tmp_path / "device", user_id=USER) as client:
            assert client.refresh_model().status == "updated"
            before = client.models.current
            assert before is not None and before.version == trained_registry.version

            candidate = register_tree_prefix(settings, trained_registry.version, trees=12)
            outcome = promote(
                settings, candidate, actor="test", reason="edge refresh test", bus=bus
            )
            assert outcome.promoted, outcome.gate.reason
            # The bus's edge publisher published the new bundle; the client sees it next time.
            result = client.refresh_model()
            assert result.status == "updated" and client.model_version == candidate
            after = client.models.current
            assert after is not None and after.manifest.sha256 != before.manifest.sha256
            assert client.refresh_model().status == "unchanged"
        # The edge figures sit on the version's MLflow run, beside the server model's.
        mlflow_client = configure_mlflow(settings)
        tags = mlflow_client.get_model_version(settings.registered_model_name, candidate).tags
        assert tags["edge.kind"] == after.manifest.kind
        assert tags["edge.sha256"] == after.manifest.sha256
        run_id = get_model_version(settings, candidate).run_id
        metrics = mlflow_client.get_run(run_id).data.metrics
        assert {"edge.edge_recall_at_floor", "edge.full_recall_at_floor"} <= set(metrics)
        print(
            "edge figures:",
            {k: round(v, 4) for k, v in sorted(metrics.items()) if k.startswith("edge.")},
        )
    finally:
        api.stop()
