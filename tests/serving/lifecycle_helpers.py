"""Registry moves for model-lifecycle tests: a private copy of the session's registry, new
versions cut from existing runs (optionally with tampered golden vectors), alias moves.

Training takes 20-40 s on this machine, so new versions are made by re-registering an existing
run's artifacts under a new version number instead (and another registry, such as an MLflow
server, gets the session's version copied in rather than trained again). A *bad* version is one
whose logged golden probabilities disagree with its ONNX file by ``golden_offset``: exactly what a
wrong or corrupted artifact looks like to the serving-side check, made without touching any
serving code.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
from mlflow import MlflowClient

from fatigue_guard.config import Settings
from fatigue_guard.demo import settings_env, wait_ready
from fatigue_guard.lifecycle.gate import make_initial_production
from fatigue_guard.registry import PRODUCTION, get_model_by_alias, get_model_version, load_pipeline
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


def clone_version(
    settings: Settings,
    version: str,
    *,
    golden_offset: float = 0.0,
    tamper_onnx: Callable[[bytes], bytes] | None = None,
) -> str:
    """Register ``version``'s model again as a new version, from a new run with its artifacts.

    With ``golden_offset`` the new run's golden probabilities are shifted by that much, so the
    version must be refused by the golden-vector check; ``tamper_onnx`` rewrites its ONNX file
    (a truncated or garbled artifact).
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
            if artifact == ONNX_ARTIFACT and tamper_onnx is not None:
                local.write_bytes(tamper_onnx(local.read_bytes()))
            client.log_artifact(run.info.run_id, str(local), str(Path(artifact).parent))
    client.set_terminated(run.info.run_id)
    tags = {k: v for k, v in (original.tags or {}).items() if k in COPIED_TAGS}
    created = client.create_model_version(
        name,
        original.source,
        run_id=run.info.run_id,
        tags=tags,
        model_id=_model_id(original.source, getattr(original, "model_id", None)),
    )
    return str(created.version)


def set_production(settings: Settings, version: str) -> None:
    """Move the alias directly (the gate is tested elsewhere; here we test what serving does)."""
    client = configure_mlflow(settings)
    client.set_registered_model_alias(settings.registered_model_name, "production", version)


def _alias_mover(settings: Settings, conn: Any) -> None:
    configure_mlflow(settings)  # imports and store set-up happen now, before any load starts
    conn.send("ready")
    while (version := conn.recv()) is not None:
        set_production(settings, version)
        conn.send(time.monotonic())


class AliasMover:
    """Moves the production alias from a separate, already warmed-up process.

    Load tests keep their clients in this process: MLflow's client-side work done here would
    hold the clients' GIL and show up as request latency the server never had, and a fresh
    process per move would burn seconds of CPU on imports while the load runs.
    """

    def __init__(self, settings: Settings) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_alias_mover, args=(settings, child), daemon=True)

    def __enter__(self) -> AliasMover:
        self._proc.start()
        if not self._conn.poll(120) or self._conn.recv() != "ready":
            raise RuntimeError("the alias mover did not start")
        return self

    def move(self, version: str) -> float:
        """Set ``production`` to ``version``; ``time.monotonic()`` once it has moved."""
        self._conn.send(version)
        if not self._conn.poll(60):
            raise TimeoutError("the alias move did not finish")
        return float(self._conn.recv())

    def __exit__(self, *exc: object) -> None:
        self._conn.send(None)
        self._proc.join(10)


def serve_log(settings: Settings) -> Path:
    """Where a process started by :func:`serve_processes` writes its output."""
    return settings.home_dir / "serve.log"


@contextmanager
def serve_process(
    settings: Settings, port: int, *, workers: int, poll_s: float, timeout_s: float = 90.0
) -> Iterator[str]:
    """``fatigue-guard serve --workers N`` as a child process (the real multi-process server)."""
    with serve_processes([(settings, port)], workers=workers, poll_s=poll_s) as apis:
        apis.wait_ready(timeout_s)
        yield apis.urls[0]


@dataclass
class ServedApis:
    """API processes started by :func:`serve_processes`; not necessarily ready yet."""

    urls: list[str]
    procs: list[subprocess.Popen[bytes]]
    logs: list[Path]

    def wait_ready(self, timeout_s: float = 90.0) -> list[str]:
        """Wait until every process answers ``/readyz`` (a model loaded); returns the URLs."""
        for url, proc, log in zip(self.urls, self.procs, self.logs, strict=True):
            wait_ready(url, proc, timeout_s, log)
        return self.urls


@contextmanager
def serve_processes(
    apps: list[tuple[Settings, int]], *, workers: int, poll_s: float
) -> Iterator[ServedApis]:
    """Several ``fatigue-guard serve`` processes, started together and stopped together.

    Yields as soon as they are started, so their (slow) start-up overlaps whatever the caller
    does next; call :meth:`ServedApis.wait_ready` before using them. They are all signalled
    before any is waited for, so their graceful shutdowns (which flush the outbox) overlap too.
    """
    served = ServedApis([], [], [])
    try:
        for settings, port in apps:
            env = settings_env(settings)
            env["FATIGUE_GUARD_MODEL_POLL_INTERVAL_S"] = str(poll_s)
            command = [sys.executable, "-m", "fatigue_guard.cli.main", "serve"]
            command += ["--port", str(port), "--workers", str(workers)]
            # A file, not a pipe nobody reads: a full pipe would block the server's logging.
            settings.home_dir.mkdir(parents=True, exist_ok=True)
            log_path = serve_log(settings)
            with log_path.open("ab") as log:
                proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            served.procs.append(proc)
            served.urls.append(f"http://127.0.0.1:{port}")
            served.logs.append(log_path)
        yield served
    finally:
        for proc in served.procs:
            proc.terminate()
        for proc in served.procs:
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


@dataclass(frozen=True)
class VersionCopy:
    """A registered version taken out of its registry: what :func:`register_copy` puts back."""

    pipeline: Any
    tags: dict[str, str]
    run_artifacts: Path  # the run's artifact folder (ONNX, golden vectors, hold-out, profile)


def read_version(registry: TrainedRegistry, folder: Path) -> VersionCopy:
    """The session's trained version, read out of the session registry into ``folder``."""
    source = registry.settings(registry.home, mlflow_tracking_uri=registry.tracking_uri)
    client = configure_mlflow(source)
    original = get_model_version(source, registry.version)
    tags = client.get_model_version(original.name, original.version).tags or {}
    folder.mkdir(parents=True, exist_ok=True)
    return VersionCopy(
        pipeline=load_pipeline(source, original),
        tags={k: v for k, v in tags.items() if k in COPIED_TAGS},
        run_artifacts=Path(client.download_artifacts(original.run_id, "", str(folder))),
    )


def register_copy(copy: VersionCopy, target: Settings) -> str:
    """Register ``copy`` in ``target``'s registry, without training; returns its version.

    A new run gets the original run's artifacts and the fitted pipeline as its logged model; the
    version gets the tags serving and the gate read. In an empty registry it is the first
    version, so it becomes production the way a first training run's version does.
    """
    import cloudpickle
    import numpy as np
    import sklearn

    client = configure_mlflow(target)
    with mlflow.start_run(experiment_id=experiment_id(target, client), run_name="copy"):
        mlflow.log_artifacts(str(copy.run_artifacts))
        info = mlflow.sklearn.log_model(
            copy.pipeline,
            name="model",
            serialization_format="cloudpickle",
            # Explicit, as training does: inferring them costs a subprocess and seconds.
            pip_requirements=[
                f"scikit-learn=={sklearn.__version__}",
                f"cloudpickle=={cloudpickle.__version__}",
                f"numpy=={np.__version__}",
            ],
        )
    created = mlflow.register_model(info.model_uri, target.registered_model_name, tags=copy.tags)
    model = get_model_version(target, str(created.version))
    if get_model_by_alias(target, PRODUCTION) is None:
        make_initial_production(target, model, actor="test", reason="copied from another registry")
    return model.version
