"""FATIGUE_GUARD_RETRAIN_TRIGGER picks what a monitoring breach starts.

The azureml path is checked with a stand-in for MLClient (Azure ML cannot be reached from the
tests): the assertions are on the job that would be submitted, as azure-ai-ml's loader built it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from azure.ai.ml.entities import Command
from typer.testing import CliRunner

from fatigue_guard.cli.monitor import EXIT_BREACH, monitor_app
from fatigue_guard.config import Settings, get_settings
from fatigue_guard.lifecycle import trigger
from fatigue_guard.lifecycle.trigger import BackgroundRetrainer, breach_hook
from fatigue_guard.storage.factory import build_storage
from tests.deploy.conftest import FakeMLClient
from tests.monitoring.conftest import Scenario

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

AZUREML = {
    "azureml_subscription_id": "00000000-0000-0000-0000-000000000000",
    "azureml_resource_group": "rg",
    "azureml_workspace": "ws",
    "azureml_compute": "gpu-less-cluster",
    "azureml_environment_version": "3",
}


def _report(report_id: int = 42) -> Any:
    decision = SimpleNamespace(reasons=["sleep_efficiency drifted", "alert rate 'up' 40%"])
    return SimpleNamespace(id=report_id, decision=decision)


def _storage_and_bus() -> tuple[Any, Any]:
    # The hooks only hand these to the retraining job; these tests never reach it.
    return object(), object()


def test_cli_leaves_retraining_to_the_schedule() -> None:
    assert breach_hook(Settings(retrain_trigger="cli"), *_storage_and_bus()) is None


def test_in_process_runs_the_retraining_job(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def fake_run(settings: Settings, storage: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return SimpleNamespace(status="skipped", reason="test")

    monkeypatch.setattr(trigger, "run_retraining", fake_run)
    hook = breach_hook(Settings(), *_storage_and_bus())
    assert hook is not None
    hook(_report())
    assert len(calls) == 1
    assert calls[0]["trigger"] == "monitor" and calls[0]["drift_report_id"] == 42


def test_azureml_submits_the_retrain_job(ml_client: FakeMLClient) -> None:
    settings = Settings(retrain_trigger="azureml", **AZUREML)
    hook = breach_hook(settings, *_storage_and_bus(), ml_client=ml_client)
    assert hook is not None
    name = hook(_report())
    [(group, job)] = ml_client.calls
    assert group == "jobs" and name == "job-1"
    assert isinstance(job, Command)
    assert job.command.startswith("fatigue-guard azureml exec -- fatigue-guard retrain --reason")
    assert job.compute == "gpu-less-cluster" and job.environment == "fatigue-guard:3"
    # The reason is single-quoted in the job's command: a quote inside it must not end that.
    reason = job.inputs["reason"]._data
    assert reason.startswith("monitor report 42: sleep_efficiency drifted;") and "'" not in reason
    assert job.tags == {"trigger": "monitor", "drift_report_id": "42"}
    assert job.limits.timeout == int(settings.retrain_lock_ttl_s)


def test_the_api_process_worker_honours_the_setting(
    monkeypatch: pytest.MonkeyPatch, ml_client: FakeMLClient
) -> None:
    quiet = BackgroundRetrainer(Settings(retrain_trigger="cli"), *_storage_and_bus())
    quiet(_report())
    quiet.join(5)
    assert quiet.last_outcome is None

    monkeypatch.setattr(
        "fatigue_guard.deploy.azureml.ml_client_from_settings", lambda settings: ml_client
    )
    worker = BackgroundRetrainer(
        Settings(retrain_trigger="azureml", **AZUREML), *_storage_and_bus()
    )
    worker(_report(7))
    worker.join(30)
    assert worker.last_outcome == "job-1"
    assert [group for group, _ in ml_client.calls] == ["jobs"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("FATIGUE_GUARD_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    storage = build_storage(get_settings())
    storage.upgrade()
    storage.close()
    yield tmp_path
    get_settings.cache_clear()


@pytest.mark.parametrize("mode", ["cli", "azureml"])
def test_monitor_command_follows_the_setting(
    mode: str,
    home: Path,
    scenario_data: Callable[[str], Scenario],
    monkeypatch: pytest.MonkeyPatch,
    ml_client: FakeMLClient,
) -> None:
    monkeypatch.setenv("FATIGUE_GUARD_RETRAIN_TRIGGER", mode)
    for name, value in AZUREML.items():
        monkeypatch.setenv(f"FATIGUE_GUARD_{name.upper()}", value)
    get_settings.cache_clear()
    monkeypatch.setattr(
        "fatigue_guard.deploy.azureml.ml_client_from_settings", lambda settings: ml_client
    )
    scenario = scenario_data("seasonal_sleep")
    current = home / "current.parquet"
    scenario.window.drop(columns=["alert"]).to_parquet(current)
    reference = home / "profile.json"
    reference.write_text(scenario.reference.to_json())
    args = ["run", "--current", str(current), "--reference", str(reference),
            "--threshold", str(scenario.threshold)]  # fmt: skip
    result = CliRunner().invoke(monitor_app, args)
    # A breach exits 3 either way, so whatever schedules the monitor can alert on it.
    assert result.exit_code == EXIT_BREACH, result.output
    if mode == "cli":
        assert ml_client.calls == []
        assert "triggered: False" in result.output
    else:
        [(group, job)] = ml_client.calls
        assert group == "jobs" and "fatigue-guard retrain" in job.command
        assert "triggered: True" in result.output
