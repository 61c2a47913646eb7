"""A live API that also hands the test its running state, and raw-socket helpers.

``tests.serving.conftest.start_api`` runs the app the way ``LiveServer`` does; the tests of the
server's defences need more: the serving state (to count key lookups or tune a limiter), the
HTTP protocol ``fatigue-guard serve`` runs, and uvicorn's own log records (no ``log_config``,
so they reach pytest's ``caplog``).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fatigue_guard.config import Settings
from fatigue_guard.serving.app import create_app
from fatigue_guard.serving.state import ServingState
from fatigue_guard.storage.factory import Storage, build_storage
from tests.fixtures.live_server import LiveServer
from tests.fixtures.models import TrainedRegistry
from tests.serving.conftest import LiveApi

KeyCheck = Callable[[str], str | None]


@contextmanager
def running_api(
    settings: Settings,
    registry: TrainedRegistry,
    *,
    wrap_key_check: Callable[[KeyCheck, Storage], KeyCheck] | None = None,
    **uvicorn_options: Any,
) -> Iterator[tuple[LiveApi, ServingState]]:
    """``(api, state)`` of an app on a real port; ``wrap_key_check`` replaces the key lookup."""
    storage = build_storage(settings)
    storage.upgrade()
    if wrap_key_check is not None:
        storage.verify_device_key = wrap_key_check(storage.verify_device_key, storage)  # type: ignore[method-assign]
    app = create_app(settings, storage=storage)
    # No log_config: uvicorn's own records reach pytest's caplog.
    server = LiveServer(app, log_config=None, **uvicorn_options)
    server.start()
    try:
        yield (
            LiveApi(f"http://127.0.0.1:{server.port}", settings, storage, registry, {}),
            (app.state.serving),
        )
    finally:
        server.stop()
        storage.stop()
        storage.close()


def port_of(api: LiveApi) -> int:
    return int(api.url.rsplit(":", 1)[1])


def seconds_until_closed(sock: socket.socket, limit_s: float) -> tuple[float, bytes]:
    """How long until the server closed ``sock`` (``inf`` if not within ``limit_s``), and what
    it sent before closing."""
    start = time.monotonic()
    received = b""
    sock.settimeout(0.2)
    while time.monotonic() - start < limit_s:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - start, received
        if not chunk:
            return time.monotonic() - start, received
        received += chunk
    return float("inf"), received
