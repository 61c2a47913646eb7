"""What serving asks the MLflow registry, with "unreachable" kept apart from "no model".

Serving must tell two answers apart that :func:`fatigue_guard.registry.get_model_by_alias` folds
together: "the registry says there is no production model" (authoritative) and "the registry did
not answer" (an outage: keep serving what we have, fall back to the disk cache at start-up). It
must also never wait minutes on MLflow's HTTP retry policy, and never create an empty registry
(MLflow would silently create a missing SQLite file and report "no model").
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fatigue_guard.config import Settings
from fatigue_guard.registry.models import RegisteredModel

PROBE_TIMEOUT_S = 2.0
# MLflow's defaults retry an HTTP call for minutes; a poll that hangs that long would also hold
# back an operator's reload. Applied only where the operator has not set them.
_MLFLOW_HTTP_LIMITS = {"max_retries": 2, "backoff_factor": 1, "timeout_s": 15}


class RegistryUnavailable(RuntimeError):
    """The registry did not answer (network, server down, store missing)."""


@dataclass(frozen=True)
class VersionArtifacts:
    """What a version needs to be served and checked: ONNX export and golden vectors."""

    onnx: bytes | None
    golden: tuple[np.ndarray, np.ndarray] | None


def bound_mlflow_http_retries() -> None:
    """Cap MLflow's HTTP retries and timeout for this process unless the operator chose them."""
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    for var, value in (
        (MLFLOW_HTTP_REQUEST_MAX_RETRIES, _MLFLOW_HTTP_LIMITS["max_retries"]),
        (MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR, _MLFLOW_HTTP_LIMITS["backoff_factor"]),
        (MLFLOW_HTTP_REQUEST_TIMEOUT, _MLFLOW_HTTP_LIMITS["timeout_s"]),
    ):
        if not var.defined:
            var.set(value)


def probe(settings: Settings, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise :class:`RegistryUnavailable` fast when the registry obviously cannot answer."""
    uri = settings.effective_mlflow_tracking_uri
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):
                return
        except urllib.error.HTTPError:
            return  # it answered; the MLflow call itself will say what is wrong
        except OSError as exc:
            raise RegistryUnavailable(f"MLflow server {uri} unreachable: {exc}") from None
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.is_file():
            raise RegistryUnavailable(f"MLflow store {path} does not exist")


def production_model(settings: Settings, alias: str = "production") -> RegisteredModel | None:
    """The version behind ``alias``; ``None`` only when the registry says there is none."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import (
        INVALID_PARAMETER_VALUE,
        RESOURCE_DOES_NOT_EXIST,
        ErrorCode,
    )

    from fatigue_guard.registry.models import model_from_version
    from fatigue_guard.registry.tracking import configure_mlflow

    probe(settings)
    try:
        client = configure_mlflow(settings)
        mv = client.get_model_version_by_alias(settings.registered_model_name, alias)
    except MlflowException as exc:
        # An unknown model is "does not exist"; an unknown alias is "invalid parameter".
        if exc.error_code in (
            ErrorCode.Name(RESOURCE_DOES_NOT_EXIST),
            ErrorCode.Name(INVALID_PARAMETER_VALUE),
        ):
            return None
        raise RegistryUnavailable(f"registry error: {exc.message[:300]}") from None
    except Exception as exc:  # driver and socket errors of whichever store is configured
        raise RegistryUnavailable(f"registry error: {type(exc).__name__}: {exc}") from None
    return model_from_version(mv)


def fetch_artifacts(settings: Settings, model: RegisteredModel) -> VersionArtifacts:
    """Download the version's ONNX export and golden vectors (either may be missing)."""
    from fatigue_guard.registry import load_golden, load_onnx_bytes

    return VersionArtifacts(
        onnx=load_onnx_bytes(settings, model), golden=load_golden(settings, model)
    )
