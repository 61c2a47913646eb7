"""The demo's API: a real ``fatigue-guard serve`` child process on a free local port.

A child process, not uvicorn in the demo's own process: the simulated phones, the monitor and the
retraining job run in the demo's process, and sharing its interpreter lock would make the API's
latency theirs.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess  # nosec B404
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from fatigue_guard.config import Settings

# No load balancer stands in front of the demo's API: the drain delay a stopping API keeps for
# one would only add seconds to the demo's end.
DEMO_SHUTDOWN_GRACE_S = 4.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment for a child process that must see exactly ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FATIGUE_GUARD_")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env["FATIGUE_GUARD_HOME"] = str(settings.home_dir)
    env["FATIGUE_GUARD_BLOB_CONTAINER"] = settings.blob_container
    if settings.database_url:
        env["FATIGUE_GUARD_DATABASE_URL"] = settings.database_url
    if settings.azure_storage_connection_string:
        env["FATIGUE_GUARD_AZURE_STORAGE_CONNECTION_STRING"] = (
            settings.azure_storage_connection_string.get_secret_value()
        )
    if settings.mlflow_tracking_uri:
        env["MLFLOW_TRACKING_URI"] = settings.mlflow_tracking_uri
    if settings.admin_token:
        env["FATIGUE_GUARD_ADMIN_TOKEN"] = settings.admin_token.get_secret_value()
    env["FATIGUE_GUARD_PRECISION_FLOOR"] = str(settings.precision_floor)
    return env


def field_env(settings: Settings, names: Iterable[str]) -> dict[str, str]:
    """``FATIGUE_GUARD_<NAME>`` for each named setting, as the child reads it back."""
    return {f"FATIGUE_GUARD_{name.upper()}": str(getattr(settings, name)) for name in names}


def wait_ready(
    base_url: str, proc: subprocess.Popen[bytes], timeout_s: float, log_path: Path
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = log_path.read_text(errors="replace") if log_path.exists() else ""
            raise RuntimeError(f"the API exited with code {proc.returncode}:\n{err[-2000:]}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"the API at {base_url} was not ready within {timeout_s:.0f} s")


@contextmanager
def running_api(
    settings: Settings,
    port: int,
    *,
    timeout_s: float = 90.0,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Start ``fatigue-guard serve`` as a child process on ``port``; stop it gracefully after.

    Its output goes to ``serve.log`` under HOME: a pipe nobody reads would fill up and block the
    server's logging. ``extra_env`` adds settings the child must share with the caller.
    """
    env = settings_env(settings) | dict(extra_env or {})
    log_path = settings.home_dir / "serve.log"
    with log_path.open("ab") as log:
        # Our own interpreter and command.
        proc = subprocess.Popen(  # nosec B603
            [sys.executable, "-m", "fatigue_guard.cli.main", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, proc, timeout_s, log_path)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def prepare_home(base: Settings, **overrides: Any) -> Settings:
    """A fresh ``HOME/demo`` on the embedded stores, whatever ``base`` points to.

    The demo never touches the state of a configured deployment: it replaces its own folder and
    nothing else.
    """
    home = base.home_dir / "demo"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    return Settings(
        home=home,
        database_url=None,
        azure_storage_connection_string=None,
        mlflow_tracking_uri=None,
        precision_floor=base.precision_floor,
        **overrides,
    )
