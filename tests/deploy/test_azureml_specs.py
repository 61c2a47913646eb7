"""Every Azure ML spec, rendered for two configurations, loads through azure-ai-ml's own loaders.

The loaders run the SDK's schema validation offline; Azure itself cannot be reached from CI, so
what the workspace would say beyond the schemas is not tested here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.ai.ml import (
    load_datastore,
    load_environment,
    load_job,
    load_online_deployment,
    load_online_endpoint,
)
from azure.ai.ml.entities import (
    AzureBlobDatastore,
    Command,
    Environment,
    JobSchedule,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
)

# The SDK's schedule loader is not re-exported at the package level.
from azure.ai.ml.entities._load_functions import load_schedule
from pydantic import SecretStr
from typer.testing import CliRunner

from fatigue_guard.cli.azureml import azureml_app
from fatigue_guard.config import Settings
from fatigue_guard.deploy import azureml
from fatigue_guard.deploy.azureml import AzureMLConfigError, render_specs, write_specs
from tests.deploy.conftest import FakeMLClient

# azure-ai-ml's schemas use marshmallow APIs that marshmallow 4 removes: its warnings, not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TEMPLATES = Path(__file__).resolve().parents[2] / "deploy" / "azureml"
DB_PASSWORD = "db-password-never-in-a-spec"
ADMIN = "admin-token-never-in-a-spec"


def _image_settings() -> Settings:
    """A prebuilt image, a datastore, an admin token and several non-default settings."""
    return Settings(
        azureml_subscription_id="00000000-0000-0000-0000-000000000000",
        azureml_resource_group="rg-fatigue",
        azureml_workspace="ws-fatigue",
        azureml_compute="retrain-cluster",
        azureml_image="fgacr.azurecr.io/fatigue-guard:0.1.0",
        azureml_environment_version="7",
        azureml_endpoint="fg-prod-weu",
        azureml_instance_type="Standard_F4s_v2",
        azureml_instance_count=3,
        azureml_storage_account="fgprodstore",
        azureml_key_vault="kv-fg-prod",
        azureml_secret_versions={
            "fatigue-guard-database-url": "a1",
            "fatigue-guard-storage-connection-string": "b2",
            "fatigue-guard-admin-token": "c3",
        },
        blob_container="features",
        mlflow_tracking_uri="http://mlflow.internal:5000",
        precision_floor=0.8,
        retrain_trigger="azureml",
        monitor_interval_s=1800.0,
        monitor_window_h=36.0,
        retrain_lock_ttl_s=5400.0,
        database_url=f"postgresql+psycopg://fg:{DB_PASSWORD}@db:5432/fg",
        admin_token=SecretStr(ADMIN),
    )


def _build_settings() -> Settings:
    """Azure ML builds the Dockerfile; no datastore, no admin token, defaults elsewhere."""
    return Settings(
        azureml_key_vault="kv-fg-dev",
        azureml_secret_versions={
            "fatigue-guard-database-url": "d4",
            "fatigue-guard-storage-connection-string": "e5",
        },
    )


CONFIGS = {"image": _image_settings, "build": _build_settings}


@pytest.fixture(params=sorted(CONFIGS))
def rendered(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Settings, Path]:
    settings = CONFIGS[request.param]()
    write_specs(settings, tmp_path)
    return settings, tmp_path


def test_every_spec_loads_with_the_sdk_loaders(rendered: tuple[Settings, Path]) -> None:
    settings, out = rendered
    assert isinstance(load_environment(out / "environment.yml"), Environment)
    assert isinstance(load_online_endpoint(out / "endpoint.yml"), ManagedOnlineEndpoint)
    for colour in ("blue", "green"):
        deployment = load_online_deployment(out / f"deployment-{colour}.yml")
        assert isinstance(deployment, ManagedOnlineDeployment)
        assert deployment.name == colour
    for job in ("monitor-job.yml", "retrain-job.yml"):
        assert isinstance(load_job(out / job), Command)
    assert isinstance(load_schedule(out / "monitor-schedule.yml"), JobSchedule)
    datastore = out / "datastore.yml"
    assert datastore.exists() == bool(settings.azureml_storage_account)
    if settings.azureml_storage_account:
        assert isinstance(load_datastore(datastore), AzureBlobDatastore)


def test_templates_are_valid_specs_on_their_own() -> None:
    assert isinstance(load_environment(TEMPLATES / "environment.yml"), Environment)
    assert isinstance(load_datastore(TEMPLATES / "datastore.yml"), AzureBlobDatastore)
    assert isinstance(load_online_endpoint(TEMPLATES / "endpoint.yml"), ManagedOnlineEndpoint)
    assert isinstance(load_online_deployment(TEMPLATES / "deployment.yml"), ManagedOnlineDeployment)
    assert isinstance(load_job(TEMPLATES / "monitor-job.yml"), Command)
    assert isinstance(load_job(TEMPLATES / "retrain-job.yml"), Command)
    assert isinstance(load_schedule(TEMPLATES / "monitor-schedule.yml"), JobSchedule)


def test_environment_is_the_image_or_the_repository_dockerfile(
    rendered: tuple[Settings, Path],
) -> None:
    settings, out = rendered
    env = load_environment(out / "environment.yml")
    assert (env.name, env.version) == ("fatigue-guard", settings.azureml_environment_version)
    if settings.azureml_image:
        assert env.image == settings.azureml_image and env.build is None
    else:
        assert env.image is None
        assert Path(env.build.path) == TEMPLATES.parents[1]
        assert (Path(env.build.path) / env.build.dockerfile_path).name == "Dockerfile"
    routes = env.inference_config
    assert (routes.liveness_route.path, routes.readiness_route.path) == ("/healthz", "/readyz")
    assert routes.scoring_route.path == "/v1/predictions"
    assert {r.port for r in (routes.liveness_route, routes.scoring_route)} == {8000}


def test_deployments_serve_the_custom_container(rendered: tuple[Settings, Path]) -> None:
    settings, out = rendered
    for colour in ("blue", "green"):
        d = load_online_deployment(out / f"deployment-{colour}.yml")
        assert d.endpoint_name == settings.azureml_endpoint
        # The loader drops the azureml: prefix of an asset reference.
        assert d.environment == f"fatigue-guard:{settings.azureml_environment_version}"
        assert (d.instance_type, d.instance_count) == (
            settings.azureml_instance_type,
            settings.azureml_instance_count,
        )
        # A ~10 ms service: fail what waits a second, take a few requests at a time per instance.
        assert d.request_settings.request_timeout_ms == 1000
        assert d.request_settings.max_concurrent_requests_per_instance == 8
        assert d.liveness_probe.period and d.readiness_probe.failure_threshold >= 10
        assert {c.enabled for c in d.data_collector.collections.values()} == {"false"}
        assert d.app_insights_enabled is False
        env = d.environment_variables
        assert env["FATIGUE_GUARD_MONITOR_ENABLED"] == "false"
        vault = f"https://{settings.azureml_key_vault}.vault.azure.net/secrets"
        versions = settings.azureml_secret_versions
        assert env["FATIGUE_GUARD_DATABASE_URL"] == (
            f"${{{{keyvault:{vault}/fatigue-guard-database-url/"
            f"{versions['fatigue-guard-database-url']}}}}}"
        )
        assert env["FATIGUE_GUARD_AZURE_STORAGE_CONNECTION_STRING"].startswith(
            f"${{{{keyvault:{vault}/fatigue-guard-storage-connection-string/"
        )
        assert ("FATIGUE_GUARD_ADMIN_TOKEN" in env) == ("fatigue-guard-admin-token" in versions)


def test_settings_become_fatigue_guard_variables_and_secrets_never_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _image_settings()
    write_specs(settings, tmp_path)
    text = "\n".join(p.read_text() for p in tmp_path.glob("*.yml"))
    assert DB_PASSWORD not in text and ADMIN not in text
    env = load_online_deployment(tmp_path / "deployment-blue.yml").environment_variables
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.internal:5000"
    assert env["FATIGUE_GUARD_PRECISION_FLOOR"] == "0.8"
    assert env["FATIGUE_GUARD_BLOB_CONTAINER"] == "features"
    assert env["FATIGUE_GUARD_RETRAIN_TRIGGER"] == "azureml"
    assert env["FATIGUE_GUARD_AZUREML_WORKSPACE"] == "ws-fatigue"
    # Defaults stay out: the code's own defaults apply.
    assert "FATIGUE_GUARD_RATE_LIMIT_PER_S" not in env and "FATIGUE_GUARD_HOME" not in env
    # A process started with these variables reads the same settings back.
    for name, value in env.items():
        if not value.startswith("${{"):
            monkeypatch.setenv(name, value)
    back = Settings()
    fields = ["precision_floor", "mlflow_tracking_uri", "blob_container", "retrain_trigger"]
    fields += ["monitor_interval_s", "azureml_workspace", "azureml_secret_versions"]
    for field in fields:
        assert getattr(back, field) == getattr(settings, field), field


def test_jobs_and_schedule(rendered: tuple[Settings, Path]) -> None:
    settings, out = rendered
    monitor = load_job(out / "monitor-job.yml")
    retrain = load_job(out / "retrain-job.yml")
    for job in (monitor, retrain):
        assert job.compute == settings.azureml_compute
        assert job.environment == f"fatigue-guard:{settings.azureml_environment_version}"
        assert job.identity is not None
        assert job.command.startswith("fatigue-guard azureml exec -- fatigue-guard ")
        assert "FATIGUE_GUARD_DATABASE_URL" not in job.environment_variables
    assert f"monitor run --window {settings.monitor_window_h:g}h" in monitor.command
    assert "retrain --reason '${{inputs.reason}}'" in retrain.command
    assert retrain.limits.timeout == int(settings.retrain_lock_ttl_s)
    schedule = load_schedule(out / "monitor-schedule.yml")
    trigger = schedule.trigger
    every_s = trigger.interval * {"minute": 60, "hour": 3600}[trigger.frequency]
    assert every_s == settings.monitor_interval_s
    assert isinstance(schedule.create_job, Command)
    assert "monitor run" in schedule.create_job.command


def test_missing_settings_are_named() -> None:
    with pytest.raises(AzureMLConfigError, match="FATIGUE_GUARD_AZUREML_KEY_VAULT"):
        render_specs(Settings())
    with pytest.raises(AzureMLConfigError, match="fatigue-guard-storage-connection-string"):
        render_specs(
            Settings(
                azureml_key_vault="kv",
                azureml_secret_versions={"fatigue-guard-database-url": "1"},
            )
        )
    with pytest.raises(AzureMLConfigError, match="FATIGUE_GUARD_AZUREML_WORKSPACE"):
        azureml.ml_client_from_settings(Settings())


def test_render_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FATIGUE_GUARD_AZUREML_KEY_VAULT", "kv-cli")
    monkeypatch.setenv(
        "FATIGUE_GUARD_AZUREML_SECRET_VERSIONS",
        '{"fatigue-guard-database-url": "1", "fatigue-guard-storage-connection-string": "2"}',
    )
    monkeypatch.setenv("FATIGUE_GUARD_AZUREML_COMPUTE", "cli-cluster")
    result = CliRunner().invoke(azureml_app, ["render", "--out", str(tmp_path / "specs")])
    assert result.exit_code == 0, result.output
    assert load_job(tmp_path / "specs" / "monitor-job.yml").compute == "cli-cluster"

    monkeypatch.delenv("FATIGUE_GUARD_AZUREML_KEY_VAULT")
    from fatigue_guard.config import get_settings

    get_settings.cache_clear()
    result = CliRunner().invoke(azureml_app, ["render", "--out", str(tmp_path / "again")])
    assert result.exit_code == 2 and "FATIGUE_GUARD_AZUREML_KEY_VAULT" in result.output


def test_submit_creates_in_dependency_order(tmp_path: Path, ml_client: FakeMLClient) -> None:
    # A stand-in for MLClient: the workspace cannot be reached, so the test checks what would be
    # sent, already validated by the loaders on the way.
    parts = ["blue", "environment", "monitor-schedule", "endpoint", "datastore"]
    results = azureml.submit(_image_settings(), tmp_path, parts, ml_client=ml_client)
    groups = [group for group, _ in ml_client.calls]
    assert groups == [
        "environments",
        "datastores",
        "online_endpoints",
        "online_deployments",
        "schedules",
    ]
    kinds = [type(entity) for _, entity in ml_client.calls]
    assert kinds == [Environment, AzureBlobDatastore, ManagedOnlineEndpoint,
                     ManagedOnlineDeployment, JobSchedule]  # fmt: skip
    assert results[0] == "environment fatigue-guard:7"
    with pytest.raises(AzureMLConfigError, match="unknown parts"):
        azureml.submit(_image_settings(), tmp_path, ["purple"], ml_client=ml_client)


def test_submit_skips_the_datastore_without_a_storage_account(
    tmp_path: Path, ml_client: FakeMLClient
) -> None:
    results = azureml.submit(_build_settings(), tmp_path, ["datastore"], ml_client=ml_client)
    assert ml_client.calls == [] and "skipped" in results[0]


class _SecretClient:
    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = secrets
        self.asked: list[str] = []

    def get_secret(self, name: str) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        self.asked.append(name)
        if name not in self.secrets:
            raise ResourceNotFoundError(f"{name} not found")
        return type("Secret", (), {"value": self.secrets[name]})()


def test_jobs_read_their_secrets_from_key_vault() -> None:
    settings = _build_settings()
    client = _SecretClient(
        {
            "fatigue-guard-database-url": "postgresql://x",
            "fatigue-guard-storage-connection-string": "s",
        }
    )
    found = azureml.secrets_from_key_vault(settings, client=client)
    assert found == {
        "FATIGUE_GUARD_DATABASE_URL": "postgresql://x",
        "FATIGUE_GUARD_AZURE_STORAGE_CONNECTION_STRING": "s",
    }
    # A variable the job already has is not asked for.
    client = _SecretClient({"fatigue-guard-storage-connection-string": "s"})
    skipped = azureml.secrets_from_key_vault(
        settings, skip={"FATIGUE_GUARD_DATABASE_URL"}, client=client
    )
    assert skipped == {"FATIGUE_GUARD_AZURE_STORAGE_CONNECTION_STRING": "s"}
    assert "fatigue-guard-database-url" not in client.asked


def test_a_missing_required_secret_is_named() -> None:
    with pytest.raises(AzureMLConfigError, match="fatigue-guard-storage-connection-string"):
        azureml.secrets_from_key_vault(
            _build_settings(),
            skip={"FATIGUE_GUARD_DATABASE_URL"},
            client=_SecretClient({}),
        )


def test_exec_runs_the_command_with_the_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FATIGUE_GUARD_AZUREML_KEY_VAULT", "kv-job")
    client = _SecretClient(
        {
            "fatigue-guard-database-url": "postgresql://job",
            "fatigue-guard-storage-connection-string": "c",
        }
    )
    real = azureml.secrets_from_key_vault
    monkeypatch.setattr(
        azureml, "secrets_from_key_vault", lambda s, skip=(): real(s, skip=skip, client=client)
    )
    ran: list[tuple[str, list[str], dict[str, str | None]]] = []

    def fake_exec(file: str, args: list[str]) -> None:
        import os

        ran.append((file, args, {"db": os.environ.get("FATIGUE_GUARD_DATABASE_URL")}))

    monkeypatch.setattr("os.execvp", fake_exec)
    args = ["exec", "--", "fatigue-guard", "monitor", "run", "--window", "7d"]
    result = CliRunner().invoke(azureml_app, args)
    assert result.exit_code == 0, result.output
    assert ran == [
        ("fatigue-guard", ["fatigue-guard", "monitor", "run", "--window", "7d"],
         {"db": "postgresql://job"}),
    ]  # fmt: skip


def test_rendered_yaml_is_plain_data(tmp_path: Path) -> None:
    # Safe-loadable by any tool (no Python tags), e.g. `az ml ... --file`.
    write_specs(_image_settings(), tmp_path)
    for path in tmp_path.glob("*.yml"):
        assert isinstance(yaml.safe_load(path.read_text()), dict)
