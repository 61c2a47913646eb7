"""Azure ML: render the YAML specs from the settings, submit them, and submit a retrain on breach.

The templates are the YAML files in ``deploy/azureml/`` (``FATIGUE_GUARD_AZUREML_TEMPLATES``
elsewhere, e.g. in the container image). Rendering loads each template as data and sets only what
comes from the settings (names, compute, image, instance sizes, schedule, environment variables),
so a template stays a valid Azure ML spec on its own and keeps the reasoning in its comments.

Secrets never enter a spec. Online deployments name them as Key Vault references, which Azure ML
resolves with the endpoint's identity; command jobs cannot use those references, so their command
starts with ``fatigue-guard azureml exec``, which reads the same secrets with the job's managed
identity and then runs the real command.

The Azure SDKs (``azure-ai-ml``, ``azure-identity``, ``azure-keyvault-secrets``: the ``azureml``
extra) are imported inside the functions that need them.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from fatigue_guard.config import Settings

ENVIRONMENT_NAME = "fatigue-guard"
DEPLOYMENTS = ("blue", "green")

# Environment variable -> Key Vault secret name. The deployments reference them, the jobs read
# them at start-up; the vault is FATIGUE_GUARD_AZUREML_KEY_VAULT.
SECRETS: Mapping[str, str] = {
    "FATIGUE_GUARD_DATABASE_URL": "fatigue-guard-database-url",
    "FATIGUE_GUARD_AZURE_STORAGE_CONNECTION_STRING": "fatigue-guard-storage-connection-string",
    # A Key Vault secret name, not the secret.
    "FATIGUE_GUARD_ADMIN_TOKEN": "fatigue-guard-admin-token",  # nosec B105
}
# Without an admin token the admin routes are simply off; the other two are the shared data
# plane every instance needs (several instances cannot share an embedded SQLite file).
OPTIONAL_SECRETS = frozenset({"FATIGUE_GUARD_ADMIN_TOKEN"})

# Settings that never become environment variables of a spec: secrets (above), the home folder
# (the image's volume) and the templates' folder (the image sets its own).
_NOT_PASSED = frozenset(
    {"home", "azureml_templates", "database_url", "azure_storage_connection_string", "admin_token"}
)

# Rendered file -> what submit does with it, in the order it must happen (the environment before
# anything that runs it, the endpoint before its deployments, a job file before its schedule).
PARTS: Mapping[str, str] = {
    "environment": "environment.yml",
    "datastore": "datastore.yml",
    "endpoint": "endpoint.yml",
    "blue": "deployment-blue.yml",
    "green": "deployment-green.yml",
    "monitor-schedule": "monitor-schedule.yml",
    "monitor-job": "monitor-job.yml",
    "retrain-job": "retrain-job.yml",
}
DEFAULT_PARTS = ("environment", "datastore", "endpoint", "blue", "monitor-schedule")


class AzureMLConfigError(ValueError):
    """A setting the requested spec or client needs is missing."""


def _require(settings: Settings, *names: str) -> None:
    missing = [f"FATIGUE_GUARD_{n.upper()}" for n in names if not getattr(settings, n)]
    if missing:
        raise AzureMLConfigError("set " + ", ".join(missing))


def template_dir(settings: Settings) -> Path:
    """``FATIGUE_GUARD_AZUREML_TEMPLATES``, else ``deploy/azureml`` of the source checkout."""
    if settings.azureml_templates is not None:
        folder = settings.azureml_templates.expanduser()
    else:
        folder = Path(__file__).resolve().parents[3] / "deploy" / "azureml"
    if not (folder / "environment.yml").is_file():
        raise AzureMLConfigError(
            f"no Azure ML templates in {folder}: set FATIGUE_GUARD_AZUREML_TEMPLATES to the "
            "folder holding deploy/azureml/*.yml"
        )
    return folder


def _env_name(field: str) -> str:
    return (
        "MLFLOW_TRACKING_URI"
        if field == "mlflow_tracking_uri"
        else f"FATIGUE_GUARD_{field}".upper()
    )


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def settings_environment(settings: Settings) -> dict[str, str]:
    """Every non-secret setting that differs from its default, as its environment variable.

    What the operator configured where ``render`` ran is what the deployments and jobs run with;
    defaults are left out so that the code's defaults keep applying.
    """
    env: dict[str, str] = {}
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        if name in _NOT_PASSED or value is None or isinstance(value, SecretStr):
            continue
        if value == field.get_default(call_default_factory=True):
            continue
        env[_env_name(name)] = _env_value(value)
    return env


def vault_url(settings: Settings) -> str:
    _require(settings, "azureml_key_vault")
    return f"https://{settings.azureml_key_vault}.vault.azure.net"


def key_vault_references(settings: Settings) -> dict[str, str]:
    """The secrets as Azure ML Key Vault references (resolved by the endpoint's identity).

    A reference names a secret version, so rotating a secret means a new version in
    FATIGUE_GUARD_AZUREML_SECRET_VERSIONS and a re-rendered, updated deployment.
    """
    base = vault_url(settings)
    versions = settings.azureml_secret_versions
    refs: dict[str, str] = {}
    missing = []
    for var, secret in SECRETS.items():
        version = versions.get(secret)
        if version:
            refs[var] = f"${{{{keyvault:{base}/secrets/{secret}/{version}}}}}"
        elif var not in OPTIONAL_SECRETS:
            missing.append(secret)
    if missing:
        raise AzureMLConfigError(
            "FATIGUE_GUARD_AZUREML_SECRET_VERSIONS has no version for "
            + ", ".join(missing)
            + " (az keyvault secret show --vault-name VAULT --name NAME --query id)"
        )
    return refs


def _template(folder: Path, name: str) -> dict[str, Any]:
    return yaml.safe_load((folder / name).read_text())


def _job(folder: Path, name: str, settings: Settings, env: Mapping[str, str]) -> dict[str, Any]:
    job = _template(folder, name)
    job["environment"] = f"azureml:{ENVIRONMENT_NAME}:{settings.azureml_environment_version}"
    job["compute"] = f"azureml:{settings.azureml_compute}"
    job["environment_variables"] = {**(job.get("environment_variables") or {}), **env}
    return job


def _recurrence(interval_s: float) -> dict[str, Any]:
    if interval_s >= 3600 and interval_s % 3600 == 0:
        return {"frequency": "hour", "interval": int(interval_s // 3600)}
    return {"frequency": "minute", "interval": max(1, round(interval_s / 60))}


def _retrain_job(folder: Path, settings: Settings) -> dict[str, Any]:
    job = _job(folder, "retrain-job.yml", settings, settings_environment(settings))
    # Past the lease's time-to-live another retrain may take the lease: stop before that.
    job.setdefault("limits", {})["timeout"] = int(settings.retrain_lock_ttl_s)
    return job


def render_specs(settings: Settings) -> dict[str, dict[str, Any]]:
    """File name -> spec (as data) for every Azure ML asset, filled from ``settings``."""
    _require(settings, "azureml_key_vault")
    folder = template_dir(settings)
    specs: dict[str, dict[str, Any]] = {}

    environment = _template(folder, "environment.yml")
    environment["version"] = settings.azureml_environment_version
    if settings.azureml_image:
        environment.pop("build", None)
        environment["image"] = settings.azureml_image
    else:
        # Relative to the template, i.e. the repository root: absolute once rendered elsewhere.
        build = environment["build"]
        build["path"] = str((folder / build["path"]).resolve())
    specs[PARTS["environment"]] = environment

    if settings.azureml_storage_account:
        datastore = _template(folder, "datastore.yml")
        datastore["account_name"] = settings.azureml_storage_account
        datastore["container_name"] = settings.blob_container
        specs[PARTS["datastore"]] = datastore

    endpoint = _template(folder, "endpoint.yml")
    endpoint["name"] = settings.azureml_endpoint
    specs[PARTS["endpoint"]] = endpoint

    env = settings_environment(settings)
    secrets = key_vault_references(settings)
    for colour in DEPLOYMENTS:
        deployment = _template(folder, "deployment.yml")
        deployment.update(
            name=colour,
            endpoint_name=settings.azureml_endpoint,
            environment=f"azureml:{ENVIRONMENT_NAME}:{settings.azureml_environment_version}",
            instance_type=settings.azureml_instance_type,
            instance_count=settings.azureml_instance_count,
        )
        # The template's own values (monitoring off per instance) win over the settings.
        template_env = deployment.get("environment_variables") or {}
        deployment["environment_variables"] = {**env, **template_env, **secrets}
        specs[PARTS[colour]] = deployment

    monitor = _job(folder, "monitor-job.yml", settings, env)
    monitor["command"] = re.sub(
        r"--window \S+", f"--window {settings.monitor_window_h:g}h", monitor["command"]
    )
    specs[PARTS["monitor-job"]] = monitor

    schedule = _template(folder, "monitor-schedule.yml")
    schedule["trigger"].update(_recurrence(settings.monitor_interval_s))
    schedule["create_job"] = f"./{PARTS['monitor-job']}"
    specs[PARTS["monitor-schedule"]] = schedule

    specs[PARTS["retrain-job"]] = _retrain_job(folder, settings)
    return specs


def write_specs(settings: Settings, out: Path) -> list[Path]:
    """Render every spec into ``out`` (created); returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, spec in render_specs(settings).items():
        path = out / name
        path.write_text(yaml.safe_dump(spec, sort_keys=False, width=100))
        written.append(path)
    return written


def load_spec(path: Path) -> Any:
    """The Azure ML entity a rendered file describes, through the SDK's own loader (validates)."""
    from azure.ai.ml import (
        load_datastore,
        load_environment,
        load_job,
        load_online_deployment,
        load_online_endpoint,
    )

    # The SDK's schedule loader is not re-exported at the package level.
    from azure.ai.ml.entities._load_functions import load_schedule

    loaders: dict[str, Callable[..., Any]] = {
        "environment": load_environment,
        "datastore": load_datastore,
        "endpoint": load_online_endpoint,
        "deployment": load_online_deployment,
        "monitor-schedule": load_schedule,
        "job": load_job,
    }
    stem = path.stem
    kind = (
        "deployment" if stem.startswith("deployment-") else "job" if stem.endswith("-job") else stem
    )
    return loaders[kind](source=path)


def ml_client_from_settings(settings: Settings) -> Any:
    """``MLClient`` for the configured workspace, authenticated by ``DefaultAzureCredential``."""
    _require(settings, "azureml_subscription_id", "azureml_resource_group", "azureml_workspace")
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    return MLClient(
        DefaultAzureCredential(),
        subscription_id=settings.azureml_subscription_id,
        resource_group_name=settings.azureml_resource_group,
        workspace_name=settings.azureml_workspace,
    )


def _create(client: Any, part: str, entity: Any) -> str:
    if part == "environment":
        done = client.environments.create_or_update(entity)
        return f"environment {done.name}:{done.version}"
    if part == "datastore":
        return f"datastore {client.datastores.create_or_update(entity).name}"
    if part == "endpoint":
        return f"endpoint {client.online_endpoints.begin_create_or_update(entity).result().name}"
    if part in DEPLOYMENTS:
        done = client.online_deployments.begin_create_or_update(entity).result()
        return f"deployment {done.name} (no traffic until you shift it)"
    if part == "monitor-schedule":
        return f"schedule {client.schedules.begin_create_or_update(entity).result().name}"
    return f"job {client.jobs.create_or_update(entity).name}"


def submit(
    settings: Settings,
    out: Path,
    parts: Iterable[str] = DEFAULT_PARTS,
    *,
    ml_client: Any | None = None,
) -> list[str]:
    """Render into ``out`` and create or update ``parts`` in the workspace, in dependency order."""
    wanted = set(parts)
    unknown = wanted - set(PARTS)
    if unknown:
        raise AzureMLConfigError(f"unknown parts {sorted(unknown)}; choose from {list(PARTS)}")
    written = {p.name: p for p in write_specs(settings, out)}
    client = ml_client if ml_client is not None else ml_client_from_settings(settings)
    results = []
    for part, file in PARTS.items():
        if part not in wanted:
            continue
        if file not in written:
            results.append(f"{part}: skipped (FATIGUE_GUARD_AZUREML_STORAGE_ACCOUNT unset)")
            continue
        results.append(_create(client, part, load_spec(written[file])))
    return results


def retrain_job(settings: Settings, *, reason: str, drift_report_id: int | None = None) -> Any:
    """The retrain command job as the SDK's entity, its reason input set."""
    from azure.ai.ml import load_job

    spec = _retrain_job(template_dir(settings), settings)
    # The command quotes the reason in single quotes for the job's shell.
    spec["inputs"]["reason"] = " ".join(reason.replace("'", '"').split())
    spec["tags"] = {"trigger": "monitor" if drift_report_id is not None else "manual"}
    if drift_report_id is not None:
        spec["tags"]["drift_report_id"] = str(drift_report_id)
    return load_job(source=io.StringIO(yaml.safe_dump(spec, sort_keys=False)))


def submit_retrain(
    settings: Settings,
    *,
    reason: str,
    drift_report_id: int | None = None,
    ml_client: Any | None = None,
) -> str:
    """Submit the retrain command job; returns the job's name in the workspace."""
    job = retrain_job(settings, reason=reason, drift_report_id=drift_report_id)
    client = ml_client if ml_client is not None else ml_client_from_settings(settings)
    return str(client.jobs.create_or_update(job).name)


def secrets_from_key_vault(
    settings: Settings, *, skip: Iterable[str] = (), client: Any | None = None
) -> dict[str, str]:
    """The secrets of :data:`SECRETS` not in ``skip``, read from the Key Vault.

    ``client`` is an ``azure.keyvault.secrets.SecretClient`` (default: one on the vault with
    ``DefaultAzureCredential``, which inside an Azure ML job is the job's managed identity).
    """
    from azure.core.exceptions import ResourceNotFoundError

    if client is None:
        from azure.identity import DefaultAzureCredential
        from azure.keyvault.secrets import SecretClient

        client = SecretClient(vault_url=vault_url(settings), credential=DefaultAzureCredential())
    found: dict[str, str] = {}
    for var, name in SECRETS.items():
        if var in skip:
            continue
        try:
            found[var] = client.get_secret(name).value
        except ResourceNotFoundError:
            if var not in OPTIONAL_SECRETS:
                raise AzureMLConfigError(
                    f"Key Vault {settings.azureml_key_vault} has no secret {name}"
                ) from None
    return found
