"""Registry moves for model-lifecycle tests: a private copy of the session's registry, new
versions cut from existing runs (optionally with tampered golden vectors), alias moves.

Training takes 20-40 s on this machine, so new versions are made by re-registering an existing
run's artifacts under a new version number instead. A *bad* version is one whose logged golden
probabilities disagree with its ONNX file by ``golden_offset``: exactly what a wrong or corrupted
artifact looks like to the serving-side check, made without touching any serving code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlflow import MlflowClient

from fatigue_guard.config import Settings
from fatigue_guard.demo import settings_env, wait_ready
from fatigue_guard.registry.models import GOLDEN_ARTIFACT, HOLDOUT_ARTIFACT, ONNX_ARTIFACT
from fatigue_guard.registry.tracking import configure_mlflow, experiment_id
from tests.fixtures.models import TrainedRegistry

# Version tags a served version needs (threshold, contract) or the gate reads.
COPIED_TAGS = ("threshold", "features_version", "precision_floor", "train_cutoff")


def private_registry_uri(registry: TrainedRegistry, folder: Path) -> str:
    """A copy of the session registry's SQLite store: alias moves here touch no other test.

    Artifact locations inside it stay absolute, so the copy reads the original run artifacts
    (read-only) and new runs add new folders beside them.
    """
    source = Path(registry.tracking_uri.removeprefix("sqlite:///"))
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "mlflow.db"
    shutil.copy2(source, target)
    return f"sqlite:///{target}"


def clone_version(settings: Settings, version: str, *, golden_offset: float = 0.0) -> str:
    """Register ``version``'s model again as a new version, from a new run with its artifacts.

    With ``golden_offset`` the new run's golden probabilities are shifted by that much, so the
    version must be refused by the golden-vector check.
    """
    client: MlflowClient = configure_mlflow(settings)
    name = settings.registered_model_name
    original = client.get_model_version(name, version)
    run = client.create_run(experiment_id(settings, client), run_name=f"clone-of-v{version}")
    with tempfile.TemporaryDirectory() as tmp:
        # The hold-out too, so the validation gate can judge the clone (promote via the CLI).
        for artifact in (ONNX_ARTIFACT, GOLDEN_ARTIFACT, HOLDOUT_ARTIFACT):
            local = Path(client.download_artifacts(original.run_id, artifact, tmp))
            if artifact == GOLDEN_ARTIFACT and golden_offset:
                doc = json.loads(local.read_text())
                doc["probabilities"] = [
                    min(1.0, max(0.0, p + golden_offset)) if p < 0.5 else p - golden_offset
                    for p in doc["probabilities"]
                ]
                local.write_text(json.dumps(doc))
            client.log_artifact(run.info.run_id, str(local), str(Path(artifact).parent))
    client.set_terminated(run.info.run_id)
    tags = {k: v for k, v in (original.tags or {}).items() if k in COPIED_TAGS}
    created = client.create_model_version(name, original.source, run_id=run.info.run_id, tags=tags)
    return str(created.version)


def set_production(settings: Settings, version: str) -> None:
    """Move the alias directly (the gate is tested elsewhere; here we test what serving does)."""
    client = configure_mlflow(settings)
    client.set_registered_model_alias(settings.registered_model_name, "production", version)


@contextmanager
def serve_process(
    settings: Settings, port: int, *, workers: int, poll_s: float, timeout_s: float = 90.0
) -> Iterator[str]:
    """``fatigue-guard serve --workers N`` as a child process (the real multi-process server)."""
    env = settings_env(settings)
    env["FATIGUE_GUARD_MODEL_POLL_INTERVAL_S"] = str(poll_s)
    command = [sys.executable, "-m", "fatigue_guard.cli.main", "serve"]
    command += ["--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, proc, timeout_s)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _model_id(source: str, known: str | None) -> str | None:
    """An MLflow server accepts a ``models:/m-...`` source only with that logged model's id."""
    if known:
        return known
    return source.removeprefix("models:/") if source.startswith("models:/m-") else None


def reregister_version(settings: Settings, version: str) -> str:
    """A new version of the same run and logged model (what an MLflow server accepts as a copy)."""
    client = configure_mlflow(settings)
    name = settings.registered_model_name
    original = client.get_model_version(name, version)
    tags = {k: v for k, v in (original.tags or {}).items() if k in COPIED_TAGS}
    created = client.create_model_version(name, f"models:/{name}/{version}", tags=tags)
    return str(created.version)
