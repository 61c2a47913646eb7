"""Server processes under test: how one is described, started, awaited and stopped.

Shared by the benchmarks that start real API processes (``serving.py``, ``serving_ab.py``,
``soak.py``), so each starts and stops its servers the same way.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass(frozen=True)
class Target:
    """One server under test: how to start it, where it listens, what one request is."""

    label: str
    command: list[str]
    env: dict[str, str]
    port: int
    ready_path: str
    lua: str  # wrk script

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_server(target: Target, log_path: Path) -> subprocess.Popen:
    """Start ``target`` with its stdout and stderr (the access log at ``--log-level info``) in
    ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            target.command, env=target.env, stdout=log, stderr=subprocess.STDOUT
        )


def wait_ready(target: Target, timeout_s: float = 180.0) -> None:
    """Return once ``target`` answers its readiness path with 200."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(target.url + target.ready_path, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{target.label} not ready on {target.url}")


def stop_all(processes: list[subprocess.Popen]) -> None:
    """Ask every server to stop, and kill those that do not within 20 s."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
