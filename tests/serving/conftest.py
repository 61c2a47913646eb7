"""A live API (real HTTP, real lifespan) over a fresh data plane and the session's registry."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from fatigue_guard.config import Settings
from fatigue_guard.demo import request_bodies
from fatigue_guard.serving.app import create_app
from fatigue_guard.storage.factory import Storage, build_storage
from tests.fixtures.live_server import LiveServer
from tests.fixtures.models import TrainedRegistry

ADMIN_TOKEN = "test-admin-token-0123456789"


@dataclass
class LiveApi:
    url: str
    settings: Settings
    storage: Storage
    registry: TrainedRegistry
    keys: dict[str, str]

    def key_for(self, user_id: str) -> str:
        if user_id not in self.keys:
            self.keys[user_id] = self.storage.create_device_key(user_id).plaintext
        return self.keys[user_id]

    def client(self, user_id: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key_for(user_id)}"} if user_id else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, **kwargs)

    def bodies(self, n: int, *, offset: int = 0) -> list[dict[str, Any]]:
        return request_bodies(self.registry.live.iloc[offset : offset + n])

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        )


def start_api(
    settings: Settings, registry: TrainedRegistry, **server_options: Any
) -> Iterator[LiveApi]:
    """A live API; ``server_options`` go to uvicorn (e.g. ``serve``'s own)."""
    storage = build_storage(settings)
    storage.upgrade()
    app = create_app(settings, storage=storage)
    with LiveServer(app, **server_options) as server:
        yield LiveApi(server.url, settings, storage, registry, {})
    storage.stop()
    storage.close()


@pytest.fixture
def api(tmp_path: Path, trained_registry: TrainedRegistry) -> Iterator[LiveApi]:
    settings = trained_registry.settings(
        tmp_path, admin_token=ADMIN_TOKEN, blob_flush_max_age_s=0.2
    )
    yield from start_api(settings, trained_registry)
