"""Publish a registered version as the edge bundle: on every deployment and by ``export-edge``.

Steps for one version: load its pipeline and its ONNX export from the registry, measure it
against the edge budget on its own hold-out rows (:func:`~fatigue_guard.edge.compact.
build_edge_model`; the production file itself when it fits, else a compact forest), log what
was measured on the version's MLflow run (the edge model's recall at the floor next to the
server model's), then write file + manifest + pointer to the blob store
(:mod:`~fatigue_guard.edge.bundle`).

**Trigger: a subscriber** (:func:`edge_publisher`) of the deployment events on the lifecycle's
message bus, not a call added to each promotion path. Every way the ``production`` alias moves
(first training run, ``promote``, ``rollback``, the automatic retraining job) publishes a
:class:`~fatigue_guard.lifecycle.gate.DeploymentEvent`; an explicit call would have to be
repeated, and remembered, in each of those. The subscriber runs in the process that moved the
alias (one CLI / job process), not in the N API replicas, which would otherwise race to build
the same bundle. A failed export is logged and
tagged on the version but does not raise: the alias has already moved and the server follows
it, phones keep the previous bundle (the pointer is untouched) and their syncs still land;
``fatigue-guard export-edge`` repairs it.

**Training data for a compact forest.** Refitting shallower forests needs the version's
training rows. The run's lineage names them (``data.source``, ``data.sha256``, and the
version's ``train_cutoff``); when the source is a file that still exists with the same hash,
the rows before the cut-off are refitted on. Otherwise (trained from an in-memory table, file
moved or changed) the exporter says so in the log, in the result and as the version tag
``edge.training_data``, and tries only tree prefixes of the production forest (no refit
needed), which may cost more recall or fail the budget outright.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fatigue_guard.config import Settings
from fatigue_guard.contract.alerting import ADVISORY_THRESHOLD
from fatigue_guard.contract.features import LABEL_COLUMN
from fatigue_guard.contract.frame import feature_matrix
from fatigue_guard.edge.bundle import (
    EdgeBundle,
    file_url,
    has_bundle,
    read_manifest,
    set_current,
    write_bundle,
)
from fatigue_guard.edge.compact import EdgeModel, build_edge_model
from fatigue_guard.edge.manifest import EdgeManifest, build_manifest
from fatigue_guard.lifecycle.gate import DeploymentEvent
from fatigue_guard.registry import (
    PRODUCTION,
    RegisteredModel,
    get_model_by_alias,
    get_model_version,
    load_onnx_bytes,
    load_pipeline,
)
from fatigue_guard.registry.lineage import training_file
from fatigue_guard.registry.models import TAG_TRAIN_CUTOFF, load_holdout
from fatigue_guard.registry.tracking import configure_mlflow
from fatigue_guard.storage.blob.stores import BlobStore

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


class EdgeExportError(RuntimeError):
    """The version cannot be turned into an edge bundle (no model, no hold-out, no budget fit)."""


@dataclass(frozen=True)
class PublishedEdge:
    """What :func:`publish_edge` did. ``built`` is False when a stored bundle was re-pointed."""

    manifest: EdgeManifest
    built: bool
    current: bool
    metrics: dict[str, float] = field(default_factory=dict)
    training_data: str = ""
    seconds: float = 0.0


def publish_edge(
    settings: Settings,
    blobs: BlobStore | None = None,
    *,
    version: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> PublishedEdge:
    """Build (unless already stored, or ``force``) and store the edge bundle of ``version``.

    Default version: the one behind ``production``. The pointer phones follow is moved only
    when the version is production, so exporting a staging candidate never ships it early.
    """
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    production = get_model_by_alias(settings, PRODUCTION)
    registered = get_model_version(settings, version) if version is not None else production
    if registered is None:
        raise EdgeExportError(
            f"no {PRODUCTION!r} version of {settings.registered_model_name!r}: train one first"
        )
    if blobs is None:
        from fatigue_guard.storage.blob.stores import build_blob_store

        blobs = build_blob_store(settings)
    is_current = production is not None and production.version == registered.version
    if not force and has_bundle(blobs, registered.version):
        if is_current:
            set_current(blobs, registered.version)
        say(f"edge bundle of v{registered.version} already stored; pointer updated")
        return PublishedEdge(
            read_manifest(blobs, registered.version),
            built=False,
            current=is_current,
            seconds=time.perf_counter() - started,
        )

    say(f"building the edge model of v{registered.version}")
    edge, training_note = build_for_version(settings, registered)
    manifest = build_manifest(
        edge.onnx_bytes,
        model_version=registered.version,
        threshold=edge.threshold,
        url=file_url(registered.version),
        kind=edge.kind,
        alerting=registered.alerting,
    )
    _log_to_mlflow(settings, registered, edge, manifest, training_note)
    write_bundle(blobs, EdgeBundle(manifest, edge.onnx_bytes), make_current=is_current)
    say(
        f"published v{registered.version} ({edge.kind}, {manifest.size_bytes / 1e6:.2f} MB, "
        f"threshold {edge.threshold:.4f})"
    )
    return PublishedEdge(
        manifest,
        built=True,
        current=is_current,
        metrics=dict(edge.metrics),
        training_data=training_note,
        seconds=time.perf_counter() - started,
    )


def build_for_version(settings: Settings, registered: RegisteredModel) -> tuple[EdgeModel, str]:
    """The edge model of a registered version, and how its training data was (not) reached."""
    pipeline = load_pipeline(settings, registered)
    full_onnx = load_onnx_bytes(settings, registered)  # the served file: byte-identical if kept
    X_val, y_val = _holdout_rows(settings, registered)
    floor = registered.precision_floor
    if not np.isfinite(floor):
        floor = settings.precision_floor
    train = training_rows(settings, registered)
    if isinstance(train, str):
        note = f"unreachable ({train}): compact candidates limited to production tree prefixes"
        X_train = np.empty((0, X_val.shape[1]), dtype=np.float32)
        y_train = np.empty(0, dtype=int)
        depths: tuple[int, ...] | None = ()
    else:
        X_train, y_train = train
        note = f"reachable ({len(X_train):,} training rows)"
        depths = None
    edge = build_edge_model(
        pipeline,
        X_train,
        y_train,
        X_val,
        y_val,
        threshold=registered.threshold,
        precision_floor=floor,
        full_onnx=full_onnx,
        depths=depths,
        name=registered.name,
        # An advisory version met no floor: a compact forest cannot either, and never alerts.
        **({"threshold_policy": _never_alert} if registered.advisory else {}),
    )
    if edge.kind == "compact" and depths == ():
        log.warning(
            "v%s needs a compact edge forest but its training data is %s",
            registered.version,
            note,
        )
    return edge, note


def _never_alert(_y_true: np.ndarray, _scores: np.ndarray, _floor: float) -> float:
    return ADVISORY_THRESHOLD


def training_rows(
    settings: Settings, registered: RegisteredModel
) -> tuple[np.ndarray, np.ndarray] | str:
    """The version's training rows (before its cut-off), or why they cannot be had."""
    from fatigue_guard.training.data import file_sha256, load_training_data

    client = configure_mlflow(settings)
    tags = client.get_run(registered.run_id).data.tags
    source, digest = tags.get("data.source", ""), tags.get("data.sha256", "")
    cutoff = (client.get_model_version(registered.name, registered.version).tags or {}).get(
        TAG_TRAIN_CUTOFF
    )
    path = training_file(tags)
    if path is None:
        return f"the run was trained from {source or 'an unrecorded source'}, not a file"
    if not path.is_file():
        return f"{path} no longer exists"
    if digest and file_sha256(path) != digest:
        return f"{path} changed since training (sha256 differs)"
    if not cutoff:
        return "the version records no train_cutoff"
    import pandas as pd

    frame = load_training_data(path, max_invalid_share=1.0).frame
    rows = frame[frame["measured_at"] < pd.Timestamp(cutoff)]
    return feature_matrix(rows), rows[LABEL_COLUMN].to_numpy().astype(int)


def _holdout_rows(settings: Settings, registered: RegisteredModel) -> tuple[np.ndarray, np.ndarray]:
    from fatigue_guard.training.data import prepare_frame

    raw = load_holdout(settings, registered)
    if raw is None or raw.empty:
        raise EdgeExportError(
            f"v{registered.version} has no hold-out artifact to measure an edge model on"
        )
    frame, report = prepare_frame(raw)
    frame = frame.loc[report.valid]
    return feature_matrix(frame), frame[LABEL_COLUMN].to_numpy().astype(int)


def _log_to_mlflow(
    settings: Settings,
    registered: RegisteredModel,
    edge: EdgeModel,
    manifest: EdgeManifest,
    training_note: str,
) -> None:
    """Edge figures on the version's run (``edge.*`` beside the server's metrics) and tags."""
    from mlflow.entities import Metric

    client = configure_mlflow(settings)
    now = int(time.time() * 1000)
    metrics = [Metric(f"edge.{k}", float(v), now, 0) for k, v in edge.metrics.items()]
    client.log_batch(registered.run_id, metrics=metrics)
    client.log_dict(
        registered.run_id,
        {
            "manifest": manifest.model_dump(mode="json"),
            "candidates": [vars(c) for c in edge.candidates],
            "training_data": training_note,
        },
        "edge/edge_model.json",
    )
    tags: dict[str, Any] = {
        "edge.kind": edge.kind,
        "edge.sha256": manifest.sha256,
        "edge.size_bytes": manifest.size_bytes,
        "edge.threshold": repr(edge.threshold),
        "edge.recall_at_floor": f"{edge.metrics['edge_recall_at_floor']:.4f}",
        "edge.full_recall_at_floor": f"{edge.metrics['full_recall_at_floor']:.4f}",
        "edge.training_data": training_note[:4000],
    }
    for key, value in tags.items():
        client.set_model_version_tag(registered.name, registered.version, key, str(value))


def edge_publisher(
    settings: Settings | Callable[[], Settings],
) -> Callable[[DeploymentEvent], None]:
    """A deployment-event handler that publishes the edge bundle of the version that now serves.

    Scoped to ``settings``, so a process never publishes into a store other than the one its
    registry belongs to."""

    def publish_on_deployment(event: DeploymentEvent) -> None:
        current = settings() if callable(settings) else settings
        if event.model_name != current.registered_model_name:
            return
        try:
            published = publish_edge(current, version=event.version)
        except Exception as exc:
            # Never fail the promotion that already happened; see the module doc.
            log.error(
                "edge bundle for %s v%s NOT published (%s: %s); phones keep the previous one. "
                "Fix, then run `fatigue-guard export-edge`.",
                event.model_name,
                event.version,
                type(exc).__name__,
                exc,
            )
            _tag_failure(current, event, exc)
            return
        log.warning(
            "edge bundle v%s %s (%s, %d bytes)",
            published.manifest.model_version,
            "published" if published.built else "re-pointed",
            published.manifest.kind,
            published.manifest.size_bytes,
        )

    return publish_on_deployment


def _tag_failure(settings: Settings, event: DeploymentEvent, exc: Exception) -> None:
    try:
        client = configure_mlflow(settings)
        client.set_model_version_tag(
            event.model_name, event.version, "edge.publish_error", f"{type(exc).__name__}: {exc}"
        )
    except Exception:  # the registry may be what failed; the log line above already says it
        log.debug("could not tag the edge export failure", exc_info=True)
