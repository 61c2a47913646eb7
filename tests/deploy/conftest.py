"""Deployment tests build their settings explicitly: nothing from the caller's environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from fatigue_guard.config import get_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Settings read FATIGUE_GUARD_* variables, and rendering copies non-default settings into the
    # specs: a variable set on the machine running the tests must not leak into them.
    for name in list(os.environ):
        if name.startswith("FATIGUE_GUARD_") or name == "MLFLOW_TRACKING_URI":
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    # `azureml exec` puts the job's secrets into os.environ by design (the command it runs reads
    # them); monkeypatch restores only what it set itself, so put the whole environment back.
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    get_settings.cache_clear()


class _Operations:
    """One operations group of a fake ``MLClient`` (jobs, environments, ...)."""

    def __init__(self, calls: list[tuple[str, Any]], group: str) -> None:
        self._calls = calls
        self._group = group

    def create_or_update(self, entity: Any) -> Any:
        self._calls.append((self._group, entity))
        return SimpleNamespace(
            name=getattr(entity, "name", None) or f"job-{len(self._calls)}",
            version=getattr(entity, "version", None),
        )

    def begin_create_or_update(self, entity: Any) -> Any:
        done = self.create_or_update(entity)
        return SimpleNamespace(result=lambda: done)


class FakeMLClient:
    """Records what would be sent to Azure ML, which cannot be reached from the tests."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        for group in (
            "environments",
            "datastores",
            "online_endpoints",
            "online_deployments",
            "schedules",
            "jobs",
        ):
            setattr(self, group, _Operations(self.calls, group))


@pytest.fixture
def ml_client() -> FakeMLClient:
    return FakeMLClient()


# The monitor command's test runs on the monitoring tests' scenarios.
from tests.monitoring.conftest import scenario_cache, scenario_data, scorer  # noqa: E402

__all__ = ["FakeMLClient", "scenario_cache", "scenario_data", "scorer"]
