"""A live API that can be stopped and restarted on the same port and HOME, with the edge
bundle of the session's production model published in its blob store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import text

from fatigue_guard.config import Settings
from fatigue_guard.edge.bundle import EdgeBundle, write_bundle
from fatigue_guard.lifecycle.edge_publication import PublishedEdge, publish_edge
from fatigue_guard.serving.app import create_app
from fatigue_guard.storage.blob.stores import LocalBlobStore
from fatigue_guard.storage.factory import Storage, build_storage
from tests.fixtures.live_server import LiveServer
from tests.fixtures.models import TrainedRegistry


@dataclass
class RestartableApi:
    """``start()`` / ``stop()`` a real server; each start is a new process-like app and data
    plane over the same HOME (SQLite file, blob folder) and port, like a server restart."""

    settings: Settings
    port: int | None = None
    keys: dict[str, str] = field(default_factory=dict)
    _server: LiveServer | None = None
    _storage: Storage | None = None

    @property
    def url(self) -> str:
        assert self.port is not None
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage(self) -> Storage:
        assert self._storage is not None, "start() first"
        return self._storage

    def start(self) -> RestartableApi:
        self._storage = build_storage(self.settings)
        self._storage.upgrade()
        self._server = LiveServer(create_app(self.settings, storage=self._storage), self.port)
        self._server.start()
        self.port = self._server.port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
            assert self._storage is not None
            self._storage.stop()  # flushes the outbox to the blob store
            self._storage.close()

    def key_for(self, user_id: str) -> str:
        if user_id not in self.keys:
            self.keys[user_id] = self.storage.create_device_key(user_id).plaintext
        return self.keys[user_id]

    def count_predictions(self) -> dict[str, int]:
        """Rows in the SQL ``predictions`` table by ``served_by``."""
        with self.storage.engine.connect() as connection:
            rows = connection.execute(
                text("SELECT served_by, count(*) FROM predictions GROUP BY served_by")
            ).all()
        return {str(k): int(v) for k, v in rows}


@pytest.fixture(scope="session")
def published_edge(
    tmp_path_factory: pytest.TempPathFactory, trained_registry: TrainedRegistry
) -> tuple[PublishedEdge, bytes]:
    """The production version's edge bundle, built once (loads the model, measures latency)."""
    home = tmp_path_factory.mktemp("edge-publish")
    settings = trained_registry.settings(home)
    blobs = LocalBlobStore(home / "blobs")
    published = publish_edge(settings, blobs)
    from fatigue_guard.edge.bundle import read_file

    _, data = read_file(blobs, published.manifest.model_version)
    return published, data


def _edge_api(
    home: Path,
    trained_registry: TrainedRegistry,
    published_edge: tuple[PublishedEdge, bytes],
    **extra: object,
) -> Iterator[RestartableApi]:
    # The parity test scores 10,000 vectors through one key: a batch costs a token per item.
    settings = trained_registry.settings(
        home, blob_flush_max_age_s=0.2, rate_limit_burst=20_000, **extra
    )
    write_bundle(
        LocalBlobStore(settings.local_blob_root),
        EdgeBundle(published_edge[0].manifest, published_edge[1]),
    )
    api = RestartableApi(settings).start()
    yield api
    api.stop()


@pytest.fixture
def edge_api(
    tmp_path: Path,
    trained_registry: TrainedRegistry,
    published_edge: tuple[PublishedEdge, bytes],
) -> Iterator[RestartableApi]:
    yield from _edge_api(tmp_path / "home", trained_registry, published_edge)


@pytest.fixture
def edge_api_as_sent(
    tmp_path: Path,
    trained_registry: TrainedRegistry,
    published_edge: tuple[PublishedEdge, bytes],
) -> Iterator[RestartableApi]:
    """An API that scores each vector as sent: no baselines filled from earlier requests, so a
    comparison of the model on both sides is not blurred by the history the vectors make."""
    yield from _edge_api(
        tmp_path / "home", trained_registry, published_edge, server_baselines=False
    )
