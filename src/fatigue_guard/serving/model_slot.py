"""The served model, the one slot that holds it, and how a new version gets into it.

A request reads :attr:`ModelSlot.current` once and uses that object to the end, so swapping the
slot (a single reference assignment, atomic under the GIL) never changes the model under a request
that is already running: in-flight requests finish on the model they started with.

:meth:`ModelSlot.refresh` is the one way a version gets in (poll, admin reload, start-up): look up
the ``production`` alias, and if it names another version, download it, build and warm its
predictor *beside* the current one, check it (golden vectors + latency, :mod:`model_check`), and
only then swap. A version that fails is refused: the current model keeps serving, the refusal is
logged and kept for ``/readyz`` and ``/metrics``. A refusal is a verdict on the version's bytes
(they do not load, or do not reproduce the golden probabilities, or are too slow), so it is kept
per version: later polls that find the alias still on it do not download it again, and only an
operator's forced reload retries it. A registry or artifact store that does not answer in full
(down, or a download cut short) says nothing about the version: the poll counts as
"unreachable", nothing is refused, and the next poll tries again. Every version that serves from
the registry is also written to the disk cache (:mod:`model_cache`), which
:meth:`ModelSlot.start_up` falls back to when the registry cannot give us a servable model.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

import numpy as np

from fatigue_guard.config import Settings
from fatigue_guard.contract.alerting import ALERTING_ON, Alerting
from fatigue_guard.registry.access import (
    RegistryUnavailable,
    VersionArtifacts,
    fetch_artifacts,
    production_model,
)
from fatigue_guard.serving.model_cache import CacheInvalid, ModelCache, sha256_hex
from fatigue_guard.serving.model_check import ModelCheckFailed, check_model

log = logging.getLogger(__name__)

Source = Literal["registry", "cache"]
Outcome = Literal["unchanged", "swapped", "refused", "unreachable", "no-model"]
REFUSALS_SHOWN = 10
# MLflow's errors can quote whole responses; /readyz, logs and metrics need the gist.
REASON_CHARS = 500


class Predictor(Protocol):
    def predict_proba(self, features: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class LoadedModel:
    """A model version ready to answer: predictor plus the threshold it was validated with."""

    name: str
    version: str
    threshold: float
    features_version: int
    predictor: Predictor
    runtime: str = "onnx"
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    sha256: str | None = None  # of the ONNX file, when served through ONNX Runtime
    check: dict[str, float] | None = None  # what the sanity check measured
    alerting: Alerting = ALERTING_ON  # "advisory": probabilities only, ``alert`` always false

    def score(self, rows: np.ndarray) -> np.ndarray:
        """Positive-class probabilities for a float32 matrix in contract order."""
        return np.asarray(self.predictor.predict_proba(rows), dtype="float64")


class NoServableModel(RuntimeError):
    """No production model exists yet (train one first) or none could be loaded."""


class ModelRefused(RuntimeError):
    """A version failed to load or failed its sanity check; the current model keeps serving."""


@dataclass(frozen=True)
class Refusal:
    version: str
    reason: str
    at: datetime

    def as_dict(self) -> dict[str, object]:
        return {"version": self.version, "reason": self.reason, "at": self.at.isoformat()}


@dataclass(frozen=True)
class RefreshOutcome:
    """What one look at the registry did. ``new`` is False for a refusal already known."""

    outcome: Outcome
    target: str | None  # the version the alias names (None: unknown or no alias)
    serving: str | None  # the version served afterwards
    previous: str | None
    reason: str | None = None
    seconds: float = 0.0
    new: bool = True


class ModelSlot:
    """Holds the current model; loads new ones beside it and swaps atomically."""

    def __init__(self) -> None:
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()  # serialises loads, never taken on the request path
        self.last_error: str | None = None
        self.source: Source | None = None
        self.source_detail: str | None = None
        self.registry_reachable: bool | None = None
        # Why the last look at the registry got no full answer, and since when (for /readyz).
        self.registry_error: str | None = None
        self.registry_down_since: datetime | None = None
        self.refused: dict[str, Refusal] = {}

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def swap(self, model: LoadedModel, source: Source = "registry") -> LoadedModel | None:
        previous, self._current = self._current, model
        self.source = source
        self.last_error = None
        return previous

    def recent_refusals(self) -> list[dict[str, object]]:
        items = sorted(self.refused.values(), key=lambda r: r.at, reverse=True)
        return [r.as_dict() for r in items[:REFUSALS_SHOWN]]

    # -- the ways in ----------------------------------------------------------------------

    def start_up(self, settings: Settings, alias: str = "production") -> RefreshOutcome:
        """First load of a process: the registry's version, else the last one cached on disk."""
        outcome = self.refresh(settings, alias)
        if self._current is None and outcome.outcome in ("unreachable", "refused"):
            self._serve_from_cache(settings, because=outcome.reason or outcome.outcome)
        return outcome

    def refresh(
        self, settings: Settings, alias: str = "production", *, force: bool = False
    ) -> RefreshOutcome:
        """Swap to the version behind ``alias`` if it is new and passes; see the module doc.

        ``force`` retries a version refused earlier (an operator's reload).
        """
        with self._lock:
            started = time.perf_counter()
            previous = self._current.version if self._current else None
            try:
                registered = production_model(settings, alias)
            except RegistryUnavailable as exc:
                return self._unreachable(None, previous, str(exc))
            if registered is None:
                self._reachable()
                reason = (
                    f"no model has the alias {alias!r} in {settings.registered_model_name!r}: "
                    "run `fatigue-guard train --data PATH` first"
                )
                if self._current is None:
                    self.last_error = reason
                return RefreshOutcome("no-model", None, previous, previous, reason)
            target = registered.version
            if self._current is not None and self._current.version == target:
                self._reachable()
                if self.source == "cache":
                    log.warning("registry confirms the cached version v%s", target)
                    self.source, self.source_detail = "registry", None
                return RefreshOutcome("unchanged", target, previous, previous)
            known = self.refused.get(target)
            if known is not None and not force:
                self._reachable()
                return RefreshOutcome(
                    "refused", target, previous, previous, known.reason, new=False
                )
            try:
                candidate, artifacts = _prepare(settings, registered)
            except RegistryUnavailable as exc:
                return self._unreachable(target, previous, f"fetching v{target}: {exc}")
            except ModelCheckFailed as exc:
                self._reachable()
                return self._refuse(target, f"failed its check: {exc}", started)
            except Exception as exc:  # the bytes arrived but do not make a model
                self._reachable()
                reason = f"failed to load: {type(exc).__name__}: {exc}"
                return self._refuse(target, reason, started)
            self._reachable()
            self.swap(candidate, "registry")
            self.source_detail = None
            self.refused.pop(target, None)
            seconds = time.perf_counter() - started
            log.warning(
                "serving model %s v%s (was v%s); loaded and checked in %.2f s: %s",
                candidate.name,
                target,
                previous,
                seconds,
                candidate.check,
            )
            _write_cache(settings, candidate, artifacts)
            return RefreshOutcome("swapped", target, target, previous, seconds=seconds)

    def load(self, settings: Settings, alias: str = "production") -> LoadedModel:
        """Reload now (refused versions included) and return the served model, or raise."""
        outcome = self.refresh(settings, alias, force=True)
        if outcome.outcome == "refused":
            raise ModelRefused(f"version {outcome.target} refused: {outcome.reason}")
        if self._current is None:
            raise NoServableModel(outcome.reason or "no model could be loaded")
        return self._current

    # -- internals ------------------------------------------------------------------------

    def _unreachable(self, target: str | None, previous: str | None, reason: str) -> RefreshOutcome:
        """The registry gave no full answer: keep serving, say why, try again next poll."""
        reason = reason[:REASON_CHARS]
        if self.registry_reachable is not False:
            log.warning("model registry unreachable (serving v%s): %s", previous, reason)
            self.registry_down_since = datetime.now(UTC)
        self.registry_reachable = False
        self.registry_error = reason
        return RefreshOutcome("unreachable", target, previous, previous, reason)

    def _reachable(self) -> None:
        if self.registry_reachable is False:
            log.warning("model registry reachable again (down since %s)", self.registry_down_since)
        self.registry_reachable = True
        self.registry_error = None
        self.registry_down_since = None

    def _refuse(self, version: str, reason: str, started: float) -> RefreshOutcome:
        reason = reason[:REASON_CHARS]
        self.refused[version] = Refusal(version, reason, datetime.now(UTC))
        serving = self._current.version if self._current else None
        if self._current is None:
            self.last_error = f"version {version} {reason}"
        log.warning("REFUSED model version %s, still serving v%s: %s", version, serving, reason)
        return RefreshOutcome(
            "refused", version, serving, serving, reason, time.perf_counter() - started
        )

    def _serve_from_cache(self, settings: Settings, *, because: str) -> None:
        from fatigue_guard.model.predictors import OnnxPredictor

        with self._lock:
            if self._current is not None:
                return
            try:
                cached = ModelCache(settings.model_cache_dir).load()
                if cached is None:
                    log.error("no servable model: %s; and no cached model on disk", because)
                    return
                if cached.name != settings.registered_model_name:
                    log.error("cached model is %r, not the configured one; ignored", cached.name)
                    return
                predictor = OnnxPredictor(cached.onnx)
                predictor.warm_up()
                report = check_model(
                    predictor, cached.golden, latency_budget_ms=settings.latency_budget_ms
                )
            except (CacheInvalid, ModelCheckFailed, ValueError, RuntimeError) as exc:
                self.last_error = f"{because}; cached model unusable: {exc}"
                log.error("%s", self.last_error)
                return
            model = LoadedModel(
                name=cached.name,
                version=cached.version,
                threshold=cached.threshold,
                features_version=cached.features_version,
                predictor=predictor,
                runtime="onnx",
                sha256=cached.sha256,
                check=report.as_dict(),
                alerting=cached.alerting,
            )
            self.swap(model, "cache")
            self.source_detail = (
                f"started from the disk cache (cached {cached.cached_at}) because the registry "
                f"gave no servable model: {because}"
            )
            log.warning("serving cached model v%s: %s", cached.version, self.source_detail)


def _prepare(settings: Settings, registered: object) -> tuple[LoadedModel, VersionArtifacts]:
    """Download, build, warm and check a version, beside whatever is serving."""
    from fatigue_guard.model.predictors import OnnxPredictor, SklearnPredictor
    from fatigue_guard.registry import RegisteredModel, load_pipeline

    assert isinstance(registered, RegisteredModel)
    artifacts = fetch_artifacts(settings, registered)
    predictor: Predictor
    if artifacts.onnx:
        predictor, runtime = OnnxPredictor(artifacts.onnx), "onnx"
    else:
        try:
            pipeline = load_pipeline(settings, registered)
        except Exception as exc:
            # Download and unpickling are one MLflow call here: a version without an ONNX
            # export is retried at each poll rather than refused for what may be a network error.
            raise RegistryUnavailable(f"loading the pipeline: {type(exc).__name__}: {exc}") from exc
        predictor, runtime = SklearnPredictor(pipeline), "sklearn"
    warm_up = getattr(predictor, "warm_up", None)
    if warm_up is not None:
        warm_up()
    report = check_model(predictor, artifacts.golden, latency_budget_ms=settings.latency_budget_ms)
    model = LoadedModel(
        name=registered.name,
        version=str(registered.version),
        threshold=float(registered.threshold),
        features_version=int(registered.features_version),
        predictor=predictor,
        runtime=runtime,
        sha256=sha256_hex(artifacts.onnx) if artifacts.onnx else None,
        check=report.as_dict(),
        alerting=registered.alerting,
    )
    return model, artifacts


def _write_cache(settings: Settings, model: LoadedModel, artifacts: VersionArtifacts) -> None:
    """Remember the served version on disk; failing to is logged, never fatal."""
    if artifacts.onnx is None:
        return  # only ONNX versions are cached (every version trained since the exporter)
    try:
        ModelCache(settings.model_cache_dir).store(
            name=model.name,
            version=model.version,
            threshold=model.threshold,
            features_version=model.features_version,
            onnx=artifacts.onnx,
            golden=artifacts.golden,
            cached_at=datetime.now(UTC).isoformat(),
            alerting=model.alerting,
        )
    except OSError as exc:
        log.error("could not write the model cache at %s: %s", settings.model_cache_dir, exc)


def load_registered_model(
    settings: Settings, alias: str = "production", *, current: LoadedModel | None = None
) -> LoadedModel:
    """Build and check the version behind ``alias`` without serving it (tools, benchmarks)."""
    registered = production_model(settings, alias)
    if registered is None:
        raise NoServableModel(
            f"no model has the alias {alias!r} in {settings.registered_model_name!r}: "
            "run `fatigue-guard train --data PATH` first"
        )
    if current is not None and current.version == registered.version:
        return current
    return _prepare(settings, registered)[0]
