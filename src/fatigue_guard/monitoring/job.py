"""The monitoring job: one window in, one stored report and a breach decision out.

``run_monitor`` is what the scheduler, ``fatigue-guard monitor run`` and the retraining loop call.
It reads the live window from the blob feature store by event time (server and edge records
alike) unless a frame is given, compares it with the production model's reference profile, stores
the JSON report in SQL and the HTML in the blob store, and calls the retrain hook on a breach
outside the cool-down.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd

from fatigue_guard.config import Settings
from fatigue_guard.contract.features import FEATURES_VERSION
from fatigue_guard.model.profile import ReferenceProfile
from fatigue_guard.monitoring.advisory import advisory_reason
from fatigue_guard.monitoring.decision import decide
from fatigue_guard.monitoring.html import render_html
from fatigue_guard.monitoring.live import read_live_window
from fatigue_guard.monitoring.performance import performance
from fatigue_guard.monitoring.persons import person_shifts, person_tolerances
from fatigue_guard.monitoring.report import Decision, MonitorReport, breach_reasons
from fatigue_guard.monitoring.segments import data_quality, out_of_range_rows, segment_tests
from fatigue_guard.monitoring.signals import feature_drifts, physiology_shifts, prediction_drift
from fatigue_guard.monitoring.window import SCORE_COLUMN, prepare_window
from fatigue_guard.registry.models import load_reference_profile

if TYPE_CHECKING:
    from fatigue_guard.registry.models import RegisteredModel
    from fatigue_guard.storage.factory import Storage

log = logging.getLogger(__name__)

BreachHook = Callable[[MonitorReport], object]
REPORTS_PREFIX = "reports"


class MonitorError(RuntimeError):
    """The job cannot run (no production model, no reference profile)."""


def _production_model(settings: Settings) -> RegisteredModel:
    from fatigue_guard.registry.models import get_model_by_alias

    model = get_model_by_alias(settings, "production")
    if model is None:
        raise MonitorError(
            f"no production version of {settings.registered_model_name!r}: train one first"
        )
    return model


def _score_offline(settings: Settings, model: RegisteredModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Score a ``--current`` table that came without served probabilities."""
    from fatigue_guard.contract.frame import coerce_feature_columns, feature_matrix
    from fatigue_guard.model.pipeline import positive_proba
    from fatigue_guard.registry.models import load_pipeline

    frame = coerce_feature_columns(frame)
    frame[SCORE_COLUMN] = positive_proba(load_pipeline(settings, model), feature_matrix(frame))
    return frame


def _window_bounds(
    frame: pd.DataFrame, now: datetime, window: timedelta
) -> tuple[datetime, datetime]:
    if "measured_at" in frame.columns and len(frame):
        stamps = pd.to_datetime(frame["measured_at"], utc=True)
        return stamps.min().to_pydatetime(), stamps.max().to_pydatetime()
    return now - window, now


def run_monitor(
    settings: Settings,
    *,
    window: timedelta | None = None,
    now: datetime | None = None,
    current: pd.DataFrame | None = None,
    reference: ReferenceProfile | None = None,
    store: bool = True,
    on_breach: BreachHook | None = None,
    model: RegisteredModel | None = None,
    threshold: float | None = None,
    rejections: Mapping[str, int] | None = None,
    storage: Storage | None = None,
    html: bool = True,
) -> MonitorReport:
    """Monitor one window and return the report; ``report.decision`` is what triggers act on.

    ``window`` defaults to ``settings.monitor_window_h``; ``now`` to the current time. With
    ``current``, that frame is the window (offline analysis; its ``fatigue_event`` labels feed
    the performance signals). ``reference``/``threshold`` default to the production model's
    profile and threshold. ``on_breach`` is called with the stored report on a breach outside
    the cool-down (``None`` = never, as ``--no-trigger``). ``rejections`` are the API's
    contract rejections per field, reported as given (they live in Prometheus, not SQL).
    ``html=False`` skips rendering the page when nothing is stored (bulk offline sweeps).
    """
    timings: dict[str, float] = {}
    cpu = time.process_time()
    clock = time.perf_counter()
    now = now or datetime.now(UTC)
    span = window or timedelta(hours=settings.monitor_window_h)
    if model is None and (reference is None or threshold is None):
        model = _production_model(settings)
    if reference is None:
        assert model is not None
        reference = load_reference_profile(settings, model)
    if threshold is None and model is not None:
        threshold = model.threshold
    floor = settings.precision_floor
    if model is not None and math.isfinite(model.precision_floor):
        floor = model.precision_floor
    timings["reference"] = time.perf_counter() - clock

    clock = time.perf_counter()
    version = model.version if model is not None else None
    if current is None:
        storage = storage or _storage(settings)
        start, end = now - span, now
        data = read_live_window(storage, start, end, version)
    else:
        frame = current
        if SCORE_COLUMN not in frame.columns and model is not None:
            frame = _score_offline(settings, model, frame)
        start, end = _window_bounds(frame, now, span)
        data = prepare_window(frame, threshold, version)
        del frame  # the arrays are all the signals need
    timings["read"] = time.perf_counter() - clock

    clock = time.perf_counter()
    tolerances = person_tolerances(settings)
    bad = out_of_range_rows(data)
    features = feature_drifts(reference, data, bad)
    prediction = prediction_drift(reference, data, threshold)
    physiology = physiology_shifts(reference, data, settings)
    persons = {p.name: p for p in person_shifts(reference, data, settings)}
    segments = segment_tests(features, persons, reference, data, settings, tolerances, bad)
    tests = decide(
        features, prediction, physiology, persons, segments, reference, data, settings, bad
    )
    quality = data_quality(data, settings, segments, bad)
    perf = performance(reference, data, threshold, floor, settings)
    timings["signals"] = time.perf_counter() - clock

    reasons = breach_reasons(features, physiology, prediction, perf, list(persons.values()))
    advisory = advisory_reason(model, perf, settings)
    if advisory is not None:
        reasons.append(advisory)
    report = MonitorReport(
        window_start=start,
        window_end=end,
        created_at=now,
        model_name=model.name if model is not None else None,
        model_version=model.version if model is not None else None,
        threshold=threshold,
        rows=data.rows,
        features=features,
        physiology=physiology,
        prediction=prediction,
        quality=quality,
        persons=list(persons.values()),
        tests=tests,
        performance=perf,
        decision=Decision(breach=bool(reasons), reasons=reasons),
        features_version=FEATURES_VERSION,
        rejections=rejections,
        timings_s=timings,
    )
    if report.decision.breach:
        _decide_trigger(settings, report, on_breach, storage if store else None, now)

    clock = time.perf_counter()
    if store:
        store_report(storage or _storage(settings), report, settings)
    elif html:
        report.html = render_html(report, psi_threshold=settings.monitor_psi_threshold)
    timings["report"] = time.perf_counter() - clock
    timings["cpu"] = time.process_time() - cpu
    if report.decision.triggered and on_breach is not None:
        try:
            on_breach(report)
        except Exception:  # the report is stored; a failing hook must not lose it
            log.exception("retrain hook failed for monitor report %s", report.id)
    return report


def _storage(settings: Settings) -> Storage:
    from fatigue_guard.storage.factory import build_storage

    return build_storage(settings)


def _decide_trigger(
    settings: Settings,
    report: MonitorReport,
    on_breach: BreachHook | None,
    storage: Storage | None,
    now: datetime,
) -> None:
    decision = report.decision
    if on_breach is None:
        decision.suppressed = "no retrain hook (--no-trigger)"
        return
    if storage is not None and settings.monitor_cooldown_h > 0:
        since = now - timedelta(hours=settings.monitor_cooldown_h)
        with storage.uow_factory() as uow:
            fired = [
                (r.id, r.created_at)
                for r in uow.drift_reports.since(since)
                if (r.report or {}).get("decision", {}).get("triggered")
            ]
        if fired:
            last_id, last_at = fired[-1]
            decision.suppressed = f"cool-down: report {last_id} triggered at {last_at.isoformat()}"
            return
    decision.triggered = True


def report_key(report_id: int, created_at: datetime) -> str:
    return f"{REPORTS_PREFIX}/{created_at:%Y/%m}/monitor-{report_id}.html"


def store_report(storage: Storage, report: MonitorReport, settings: Settings) -> MonitorReport:
    """JSON row in ``drift_reports`` and the HTML page in the blob store; sets ``report.id``.

    The row is inserted first so that the page can carry its id; both land in one transaction
    (the HTML put happens before the commit, so a stored row always has its page).
    """
    from fatigue_guard.storage.sql.tables import DriftReport

    with storage.uow_factory(write=True) as uow:
        row = uow.drift_reports.add(
            DriftReport(
                created_at=report.created_at,
                window_start=report.window_start,
                window_end=report.window_end,
                features_version=report.features_version,
                model_version=report.model_version,
                breached=report.decision.breach,
                report={},
            )
        )
        report.id = int(row.id)
        report.html = render_html(report, psi_threshold=settings.monitor_psi_threshold)
        key = report_key(report.id, report.created_at)
        try:
            storage.blobs.put(key, report.html.encode())
            report.html_key = key
        except Exception:  # keep the JSON even if the blob store is down
            log.exception("could not store the HTML of monitor report %s", report.id)
        row.html_key = report.html_key
        row.report = report.as_dict()
        uow.commit()
    return report


def load_report(
    storage: Storage, report_id: int | None = None
) -> tuple[dict[str, object], bytes | None]:
    """A stored report's JSON and HTML (the latest when ``report_id`` is ``None``)."""
    with storage.uow_factory() as uow:
        row = uow.drift_reports.latest() if report_id is None else uow.drift_reports.get(report_id)
        if row is None:
            raise LookupError(
                "no monitor report stored yet" if report_id is None else f"no report {report_id}"
            )
        doc, key = dict(row.report), row.html_key
    html = None
    if key:
        from fatigue_guard.storage.blob.stores import BlobNotFound

        try:
            html = storage.blobs.get(key)
        except BlobNotFound:
            html = None
    return doc, html
