"""What serving asks the MLflow registry, with "unreachable" kept apart from "no model".

Serving must tell two answers apart that :func:`fatigue_guard.registry.get_model_by_alias` folds
together: "the registry says there is no production model" (authoritative) and "the registry did
not answer" (an outage: keep serving what we have, fall back to the disk cache at start-up). It
must also never wait minutes on MLflow's HTTP retry policy, and never create an empty registry
(MLflow would silently create a missing SQLite file and report "no model").

It asks as little as it can: the watcher thread shares the GIL with the request path, and
every MLflow store query is Python work that requests wait behind. A poll is one alias lookup;
a new version costs one run lookup plus two file downloads (MLflow's ``runs:/`` resolution, used
per artifact, would look the run up four times and the experiment three times).
"""

from __future__ import annotations

import json
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# Imported here, at start-up, not at the first swap: an import holds the GIL for hundreds of
# milliseconds, and the watcher thread shares it with the request path.
import mlflow.artifacts
import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from fatigue_guard.config import Settings
from fatigue_guard.registry.models import GOLDEN_ARTIFACT, ONNX_ARTIFACT, RegisteredModel

PROBE_TIMEOUT_S = 2.0
# MLflow's defaults retry an HTTP call for minutes; a poll that hangs that long would also hold
# back an operator's reload, and /readyz would say "reachable" through most of an outage that
# began during a call. So each request waits at most about one poll interval (within these
# bounds) and is retried once (the next poll is the next retry): a look at the registry lasts
# about as long as two pauses between looks. Applied only where the operator has not set them.
_MLFLOW_HTTP_LIMITS = {"max_retries": 1, "backoff_factor": 1}
REQUEST_TIMEOUT_BOUNDS_S = (1.0, 15.0)
_set_here: set[str] = set()  # the variables this process set itself (not the operator's)


class RegistryUnavailable(RuntimeError):
    """The registry did not answer (network, server down, store missing)."""


@dataclass(frozen=True)
class VersionArtifacts:
    """What a version needs to be served and checked: ONNX export and golden vectors."""

    onnx: bytes | None
    golden: tuple[np.ndarray, np.ndarray] | None


def request_timeout_s(settings: Settings) -> float:
    """How long serving waits on one request to the registry: see ``_MLFLOW_HTTP_LIMITS``."""
    low, high = REQUEST_TIMEOUT_BOUNDS_S
    return min(high, max(low, settings.model_poll_interval_s))


def bound_mlflow_http_retries(settings: Settings) -> None:
    """Cap MLflow's HTTP retries and timeout for this process unless the operator chose them.

    The variables are process-wide; values this function set earlier are its own to replace.
    """
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    for var, value in (
        (MLFLOW_HTTP_REQUEST_MAX_RETRIES, _MLFLOW_HTTP_LIMITS["max_retries"]),
        (MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR, _MLFLOW_HTTP_LIMITS["backoff_factor"]),
        (MLFLOW_HTTP_REQUEST_TIMEOUT, round(request_timeout_s(settings))),
    ):
        if not var.defined or var.name in _set_here:
            var.set(value)
            _set_here.add(var.name)


def probe(settings: Settings, timeout_s: float | None = None) -> None:
    """Raise :class:`RegistryUnavailable` fast when the registry obviously cannot answer."""
    if timeout_s is None:
        timeout_s = min(PROBE_TIMEOUT_S, request_timeout_s(settings))
    uri = settings.effective_mlflow_tracking_uri
    if uri.startswith(("http://", "https://")):
        try:
            # The operator's own tracking URI, checked to be http(s) just above.
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):  # nosec B310
                return
        except urllib.error.HTTPError:
            return  # it answered; the MLflow call itself will say what is wrong
        except OSError as exc:
            raise RegistryUnavailable(f"MLflow server {uri} unreachable: {exc}") from None
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.is_file():
            raise RegistryUnavailable(f"MLflow store {path} does not exist")


def _client(settings: Settings) -> MlflowClient:
    """A read-only client of the configured store.

    Not :func:`~fatigue_guard.registry.tracking.configure_mlflow`: that also makes sure the
    experiment exists (a query per call, and a write serving has no business doing) and
    re-points MLflow's process-wide URIs on every poll. MLflow caches the store per URI, so a
    client per call is cheap.
    """

    uri = settings.effective_mlflow_tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def production_model(settings: Settings, alias: str = "production") -> RegisteredModel | None:
    """The version behind ``alias``; ``None`` only when the registry says there is none."""
    from mlflow.protos.databricks_pb2 import (
        INVALID_PARAMETER_VALUE,
        RESOURCE_DOES_NOT_EXIST,
        ErrorCode,
    )

    from fatigue_guard.registry.models import model_from_version

    probe(settings)
    try:
        mv = _client(settings).get_model_version_by_alias(settings.registered_model_name, alias)
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
    """Download the version's ONNX export and golden vectors (either may be missing).

    The run is looked up once for its artifact root; both files are then read from that root
    directly (local folder, ``mlflow-artifacts:`` through the server, or a blob store).
    Raises :class:`RegistryUnavailable` when the registry or its artifact store does not answer
    in full: the version is then neither served nor refused, only tried again.
    """
    try:
        root = _client(settings).get_run(model.run_id).info.artifact_uri.rstrip("/")
    except Exception as exc:  # HTTP, driver and file-system errors of whichever store
        raise RegistryUnavailable(
            f"looking up run {model.run_id}: {type(exc).__name__}: {exc}"
        ) from None
    uri = settings.effective_mlflow_tracking_uri
    with tempfile.TemporaryDirectory() as tmp:
        onnx = _download(f"{root}/{ONNX_ARTIFACT}", uri, Path(tmp) / "onnx")
        golden = _download(f"{root}/{GOLDEN_ARTIFACT}", uri, Path(tmp) / "golden")
        return VersionArtifacts(
            onnx=onnx.read_bytes() if onnx else None,
            golden=_golden(json.loads(golden.read_text())) if golden else None,
        )


def _download(artifact_uri: str, tracking_uri: str, folder: Path) -> Path | None:
    """One artifact file into ``folder``; ``None`` if the version has no such artifact.

    "Not there" is decided by listing the file's folder, never by a failed download: a download
    cut short by the network says nothing about the version, and reading it as "no golden
    vectors" would refuse a good version for good. Any failure to list or download raises
    :class:`RegistryUnavailable`, which the caller retries at its next poll.
    """
    folder.mkdir()
    parent, _, name = artifact_uri.rpartition("/")
    try:
        listed = mlflow.artifacts.list_artifacts(artifact_uri=parent, tracking_uri=tracking_uri)
    except Exception as exc:  # HTTP, driver and file-system errors of whichever store
        raise RegistryUnavailable(f"listing {parent}: {type(exc).__name__}: {exc}") from None
    if not any(not f.is_dir and Path(f.path).name == name for f in listed):
        return None
    try:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=artifact_uri, dst_path=str(folder), tracking_uri=tracking_uri
            )
        )
    except Exception as exc:
        raise RegistryUnavailable(f"downloading {name}: {type(exc).__name__}: {exc}") from None
    if not local.is_file():
        raise RegistryUnavailable(f"downloading {name}: no file came back")
    return local


def _golden(doc: dict[str, list]) -> tuple[np.ndarray, np.ndarray]:
    """Golden vectors as training logs them (:func:`fatigue_guard.registry.load_golden`'s format):
    float32 rows in contract order with ``None`` = null, and the pipeline's probabilities."""
    rows = [[np.nan if v is None else v for v in row] for row in doc["rows"]]
    return np.array(rows, np.float32), np.asarray(doc["probabilities"], dtype=np.float64)
