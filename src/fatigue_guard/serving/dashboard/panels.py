"""The dashboard's panels as JSON: one builder per ``/v1/admin/dashboard/<panel>.json``.

Every builder reads stores that other parts of the system write (SQL through
:mod:`fatigue_guard.storage.sql.dashboard_queries`, the registry through
:mod:`.registry_view`, the blob store, this process's metrics history) and changes nothing. Each
answers on its own, so one store being down empties its panels and leaves the others standing.
Charts use the format of :mod:`.charts`; an empty chart says what will appear and when.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from fatigue_guard.config import Settings
from fatigue_guard.serving.dashboard.charts import (
    Chart,
    Series,
    axis,
    clean,
    nice_step,
    ratio,
    rebin,
)
from fatigue_guard.serving.dashboard.registry_view import RegistryView, read_registry
from fatigue_guard.serving.dashboard.sampler import MetricsHistory
from fatigue_guard.serving.model_slot import ModelSlot
from fatigue_guard.storage.factory import Storage
from fatigue_guard.storage.sql.dashboard_queries import DashboardQueries, PredictionBucket

T = TypeVar("T")
Cached = Callable[[str, Callable[[], T]], T]

MAX_REPORTS = 60  # at the default 6 h interval: the last fifteen days
MAX_RUNS = 20
MAX_MOVES = 50
FEATURES_SHOWN = 6  # drift chart: the features with the highest latest PSI start visible
REPORTS_ROUTE = "/v1/admin/dashboard/reports"
# An alias move is written to MLflow and, by the bus's audit subscriber, to SQL within moments;
# entries further apart than this are different moves.
_SAME_MOVE_S = 300.0


@dataclass
class Context:
    settings: Settings
    storage: Storage
    models: ModelSlot
    history: MetricsHistory | None
    now: datetime
    cached: Cached[Any]
    recorder_stats: Callable[[], Any] | None = None


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _epoch(value: datetime) -> float:
    return value.timestamp()


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:g} h" if hours >= 1 else f"{seconds / 60:g} min"


def _envelope(panel: str, ctx: Context, **body: Any) -> dict[str, Any]:
    return {"panel": panel, "generated_at": _iso(ctx.now), "pid": os.getpid(), **body}


def registry(ctx: Context) -> RegistryView:
    return ctx.cached("registry", lambda: read_registry(ctx.settings))


# -- serving: versions, gate decisions, alias moves -------------------------------------------


def _deployment_rows(ctx: Context) -> list[dict[str, Any]]:
    def load() -> list[dict[str, Any]]:
        with ctx.storage.uow_factory() as uow:
            rows = DashboardQueries(uow.session).deployments(
                ctx.settings.registered_model_name, MAX_MOVES
            )
            return [
                {
                    "id": int(r.id),
                    "at": r.created_at,
                    "from": r.from_version,
                    "to": r.to_version,
                    "actor": r.actor,
                    "reason": r.reason,
                    "retrain_run_id": r.retrain_run_id,
                }
                for r in rows
            ]

    return ctx.cached("deployments", load)


def alias_moves(sql_rows: Sequence[dict[str, Any]], history: Sequence[dict[str, Any]]) -> list:
    """Every known move of ``production``, newest first: the SQL audit rows (which have ids,
    and link retraining runs) matched with the registry's own history (which names the action:
    initial, promote, rollback). A move only one side recorded is shown all the same: the
    first version by ``fatigue-guard train`` is in MLflow only, history older than the tag's
    last entries is in SQL only."""
    remaining = [dict(h) for h in history]
    moves: list[dict[str, Any]] = []
    for row in sql_rows:
        match = None
        for entry in remaining:
            at = _parse(entry.get("at"))
            if (
                str(entry.get("version")) == row["to"]
                and (entry.get("previous_version") or None) == (row["from"] or None)
                and at is not None
                and abs((at - row["at"]).total_seconds()) <= _SAME_MOVE_S
            ):
                match = entry
                break
        if match is not None:
            remaining.remove(match)
        moves.append(
            {
                "id": row["id"],
                "at": _iso(row["at"]),
                "from": row["from"],
                "to": row["to"],
                "action": match.get("action") if match else None,
                "actor": row["actor"],
                "reason": row["reason"],
                "retrain_run_id": row["retrain_run_id"],
                "recorded_in": ["sql", "mlflow"] if match else ["sql"],
            }
        )
    for entry in remaining:
        moves.append(
            {
                "id": None,
                "at": _iso(_parse(entry.get("at"))),
                "from": entry.get("previous_version"),
                "to": str(entry.get("version")),
                "action": entry.get("action"),
                "actor": entry.get("actor"),
                "reason": entry.get("reason"),
                "retrain_run_id": entry.get("retrain_run_id"),
                "recorded_in": ["mlflow"],
            }
        )
    moves.sort(key=lambda m: m["at"] or "", reverse=True)
    return moves[:MAX_MOVES]


def serving_panel(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    view = registry(ctx)
    try:
        sql_rows = _deployment_rows(ctx)
        sql_error = None
    except Exception as exc:  # the SQL store is down: MLflow's history still answers
        sql_rows, sql_error = [], f"{type(exc).__name__}: {str(exc)[:200]}"
    moves = alias_moves(sql_rows, view.history)
    current = ctx.models.current
    production = view.production
    prod_row = view.version(production)
    since = next((m for m in moves if m["to"] == production), None)
    floor = (prod_row or {}).get("precision_floor") or s.precision_floor
    for version in view.versions:
        version["moves"] = [m for m in moves if m["to"] == version["version"]]
    served = None
    if current is not None:
        served = {
            "version": current.version,
            "threshold": current.threshold,
            "loaded_at": _iso(current.loaded_at),
            "source": ctx.models.source,
            "runtime": current.runtime,
            "pid": os.getpid(),
        }
    empty = None
    if not view.versions and view.error is None:
        empty = (
            f"No version of {view.name!r} is registered yet. The first "
            "`fatigue-guard train --data PATH` registers one and makes it production; "
            "every later one appears here with its gate decision."
        )
    return _envelope(
        "serving",
        ctx,
        model_name=view.name,
        served=served,
        served_empty=None
        if served
        else (
            "This process serves no model yet (see /readyz): it loads the production version "
            f"within {_hours(s.model_poll_interval_s)} of one being registered."
        ),
        production={
            "version": production,
            "since": since["at"] if since else None,
            "action": since["action"] if since else None,
            "by": since["actor"] if since else None,
            "reason": since["reason"] if since else None,
        },
        in_step=served is None or production is None or served["version"] == production,
        staging=view.aliases.get("staging"),
        alerting={
            "rule": "alert when the fatigue probability >= the threshold",
            "threshold": current.threshold if current else (prod_row or {}).get("threshold"),
            "threshold_rule": (
                "the highest recall whose precision lower confidence bound (one-sided Wilson, "
                f"z = {s.threshold_confidence_z:g}, on effective alerts) clears the floor"
            ),
            "precision_floor": floor,
            "drift_response": {
                "monitor_enabled": s.monitor_enabled,
                "interval_h": s.monitor_interval_s / 3600,
                "window_h": s.monitor_window_h,
                "retrain_trigger": s.retrain_trigger,
                "cooldown_h": s.monitor_cooldown_h,
            },
        },
        versions=view.versions,
        moves=moves,
        rollbacks=[m for m in moves if m["action"] == "rollback"],
        registry_error=view.error,
        sql_error=sql_error,
        empty=empty,
    )


# -- traffic from the stored records ----------------------------------------------------------


@dataclass(frozen=True)
class TrafficSeries:
    x: list[int]
    step_s: int
    server: list[float]
    edge: list[float]
    alerts: list[float]
    first_s: int | None


def traffic_series(ctx: Context, hours: float) -> TrafficSeries:
    def load() -> TrafficSeries:
        base = 10 if hours <= 24 else 60
        start = ctx.now - timedelta(hours=hours)
        with ctx.storage.uow_factory() as uow:
            buckets: list[PredictionBucket] = DashboardQueries(uow.session).prediction_buckets(
                start, ctx.now + timedelta(seconds=1), base
            )
        end_s = _epoch(ctx.now)
        if not buckets:
            return TrafficSeries([], base, [], [], [], None)
        first = min(b.start_s for b in buckets)
        # At least ten minutes of axis: a burst a minute ago still shows what came before.
        span = max(end_s - first, 600.0)
        step = nice_step(span, base_s=base)
        x = axis(end_s - span, end_s, step)
        server = rebin(
            [(b.start_s, b.predictions) for b in buckets if b.served_by != "edge"], x, step
        )
        edge = rebin(
            [(b.start_s, b.predictions) for b in buckets if b.served_by == "edge"], x, step
        )
        alerts = rebin([(b.start_s, b.alerts) for b in buckets], x, step)
        return TrafficSeries(x, step, server, edge, alerts, first)

    return ctx.cached(f"traffic:{hours:g}", load)


def traffic_panel(ctx: Context, hours: float) -> dict[str, Any]:
    t = traffic_series(ctx, hours)

    def labels() -> int:
        with ctx.storage.uow_factory() as uow:
            return DashboardQueries(uow.session).feedback_received(
                ctx.now - timedelta(hours=hours), ctx.now + timedelta(seconds=1)
            )

    feedback = ctx.cached(f"feedback:{hours:g}", labels)
    per_min = 60.0 / t.step_s
    total = [a + b for a, b in zip(t.server, t.edge, strict=True)]
    empty = (
        f"No prediction was stored in the last {hours:g} h. Every answered prediction, and every "
        "edge event a phone syncs, is counted here by the time the server stored it, within "
        "seconds."
    )
    src = "SQL predictions, by received_at"
    predictions = Chart(
        "predictions",
        "Predictions stored per minute",
        [float(v) for v in t.x],
        [
            Series("server", "server", [clean(v * per_min, 2) for v in t.server], "/min"),
            Series("edge", "edge (synced)", [clean(v * per_min, 2) for v in t.edge], "/min"),
        ],
        empty,
        y_label="per minute",
        source=src,
    )
    alert_rate = Chart(
        "alert_rate",
        "Alert rate",
        [float(v) for v in t.x],
        [Series("alert_rate", "alerts / predictions", ratio(t.alerts, total, 100.0), "%")],
        empty,
        y_label="%",
        source=src,
    )
    totals = {
        "predictions": int(sum(total)),
        "server": int(sum(t.server)),
        "edge": int(sum(t.edge)),
        "alerts": int(sum(t.alerts)),
        # Labels that arrived in the window: what live precision and recall will be made of.
        "feedback": feedback,
    }
    return _envelope(
        "traffic",
        ctx,
        hours=hours,
        step_s=t.step_s,
        totals=totals,
        alert_rate=clean(totals["alerts"] / totals["predictions"])
        if totals["predictions"]
        else None,
        charts=[predictions.as_dict(), alert_rate.as_dict()],
    )


# -- this process's request metrics -----------------------------------------------------------


def process_panel(ctx: Context) -> dict[str, Any]:
    history = ctx.history
    intervals = []
    if history is not None:
        history.refresh()
        intervals = history.intervals()
        # Quiet intervals are zeros on the rate line (no share, no latency); a process that
        # never answered anything has no chart at all.
        if not any(i.requests > 0 for i in intervals):
            intervals = []
    x = [clean(i.at, 3) or 0.0 for i in intervals]
    if history is None or not history.running:
        empty = (
            "This process keeps no metrics history (its sampler is not running): request rate, "
            "latency and errors appear once the API is started with its lifespan "
            "(`fatigue-guard serve`)."
        )
    else:
        started = datetime.fromtimestamp(history.started_at or 0, UTC)
        empty = (
            f"Process {history.pid} has answered no API request since {_iso(started)}. A point "
            f"is added every {history.interval_s:g} s in which requests arrive (probes, /metrics "
            "and the dashboard itself are not counted)."
        )
    src = "this process's Prometheus metrics, sampled"
    requests = Chart(
        "requests",
        "Requests and errors (this process)",
        x,
        [
            Series(
                "rate", "requests/s", [clean(i.requests / i.seconds, 3) for i in intervals], "/s"
            ),
            Series(
                "errors",
                "5xx share",
                [_share(i.server_errors, i.requests) for i in intervals],
                "%",
                axis="y2",
            ),
            Series(
                "client_errors",
                "4xx share",
                [_share(i.client_errors, i.requests) for i in intervals],
                "%",
                axis="y2",
                dash=True,
            ),
        ],
        empty,
        y_label="requests/s",
        y2_label="% of requests",
        source=src,
    )
    latency = Chart(
        "latency",
        "Server latency (this process)",
        x,
        [
            Series("p50", "p50", [_ms(i.p50_s) for i in intervals], "ms"),
            Series("p99", "p99", [_ms(i.p99_s) for i in intervals], "ms"),
        ],
        empty,
        y_label="ms",
        source=src,
    )
    return _envelope(
        "process",
        ctx,
        sampler=history.describe() if history is not None else None,
        charts=[requests.as_dict(), latency.as_dict()],
    )


def _share(part: float, whole: float) -> float | None:
    return clean(100 * part / whole, 2) if whole > 0 else None


def _ms(seconds: float | None) -> float | None:
    return clean(seconds * 1000, 3) if seconds is not None else None


# -- monitoring reports: performance and drift ------------------------------------------------


def _reports(ctx: Context) -> list[dict[str, Any]]:
    def load() -> list[dict[str, Any]]:
        with ctx.storage.uow_factory() as uow:
            rows = DashboardQueries(uow.session).drift_reports(MAX_REPORTS)
            return [
                {
                    "id": int(r.id),
                    "created_at": r.created_at,
                    "window_end": r.window_end,
                    "breached": bool(r.breached),
                    "html_key": r.html_key,
                    "report": dict(r.report or {}),
                }
                for r in rows
            ]

    return ctx.cached("reports", load)


def _no_reports_text(s: Settings) -> str:
    when = (
        f"every {_hours(s.monitor_interval_s)} in each API process"
        if s.monitor_enabled
        else "when `fatigue-guard monitor run` is run (the in-process scheduler is off)"
    )
    return (
        f"No monitoring report is stored yet. The monitor runs {when}, over the last "
        f"{s.monitor_window_h:g} h of predictions, or now with `fatigue-guard monitor run`; each "
        "stored report adds a point here."
    )


def _bound(interval: object, i: int) -> float | None:
    return clean(interval[i]) if isinstance(interval, list) and len(interval) == 2 else None


def _rate_chart(
    chart_id: str,
    title: str,
    x: list[float],
    metric: str,
    labelled: list[float | None],
    intervals: Sequence[object],
    estimated: list[float | None],
    *,
    floors: list[float | None] | None,
    empty_text: str,
    source: str,
) -> Chart:
    """A labelled share over time with its 95 % band and label-free estimate.

    Precision and recall are read the same way (the band says how much the labels can tell, the
    dashed estimate what the scores alone suggest), so they are drawn by one construction; the
    floor line is there only for the metric that has one.
    """
    series = [
        Series(metric, f"labelled {metric}", labelled),
        Series(f"{metric}_lo", "95% interval (low)", [_bound(i, 0) for i in intervals]),
        Series(f"{metric}_hi", "95% interval (high)", [_bound(i, 1) for i in intervals]),
        Series(f"estimated_{metric}", "label-free estimate", estimated, dash=True),
    ]
    if floors is not None:
        series.append(Series("floor", f"{metric} floor", floors, reference=True, dash=True))
    return Chart(
        chart_id,
        title,
        x,
        series,
        empty_text,
        y_label=metric,
        bands=[(f"{metric}_hi", f"{metric}_lo")],
        source=source,
        y_range=(0.0, 1.0),
    )


def report_url(report_id: int) -> str:
    return f"{REPORTS_ROUTE}/{report_id}.html"


def performance_panel(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    reports = [r for r in _reports(ctx) if r["report"].get("performance")]
    x = [_epoch(r["window_end"]) for r in reports]
    perfs = [r["report"]["performance"] for r in reports]
    floors = [clean(p.get("floor")) for p in perfs]
    if reports:
        empty = (
            "The stored reports hold no labelled alerts and no label-free estimate yet. The "
            "estimate appears with the next report over served predictions; labelled precision "
            "and recall once phones send feedback (POST /v1/feedback) for alerted predictions."
        )
    else:
        empty = _no_reports_text(s)
    src = "stored monitoring reports (drift_reports)"
    precision = _rate_chart(
        "precision",
        "Live precision against the floor",
        x,
        "precision",
        [clean(p.get("precision")) for p in perfs],
        [p.get("precision_interval") for p in perfs],
        [clean(p.get("estimated_precision")) for p in perfs],
        floors=floors,
        empty_text=empty,
        source=src,
    )
    recall = _rate_chart(
        "recall",
        "Live recall",
        x,
        "recall",
        [clean(p.get("recall")) for p in perfs],
        [p.get("recall_interval") for p in perfs],
        [clean(p.get("estimated_recall")) for p in perfs],
        floors=None,
        empty_text=empty,
        source=src,
    )
    latest = reports[-1] if reports else None
    daily_rows = (latest["report"]["performance"].get("daily") or []) if latest else []
    daily_x = [_epoch(datetime.fromisoformat(d["day"]).replace(tzinfo=UTC)) for d in daily_rows]
    latest_floor = clean(latest["report"]["performance"].get("floor")) if latest else None
    daily = _rate_chart(
        "daily_precision",
        "Precision per day in the latest report's window",
        daily_x,
        "precision",
        [clean(d.get("precision")) for d in daily_rows],
        [d.get("interval") for d in daily_rows],
        [clean(d.get("estimated_precision")) for d in daily_rows],
        floors=[latest_floor] * len(daily_rows),
        empty_text=empty
        if not latest
        else (
            "The latest report has no day with labelled or alerted predictions: days appear once "
            "its window holds alerts."
        ),
        source="the latest stored monitoring report",
    )
    headline = None
    if latest is not None:
        p = latest["report"]["performance"]
        headline = {
            "report_id": latest["id"],
            "created_at": _iso(latest["created_at"]),
            "window": latest["report"].get("window"),
            "floor": clean(p.get("floor")),
            "labels": p.get("labels"),
            "labelled_alerts": p.get("labelled_alerts"),
            "precision": clean(p.get("precision")),
            "precision_interval": p.get("precision_interval"),
            "recall": clean(p.get("recall")),
            "recall_interval": p.get("recall_interval"),
            "estimated_precision": clean(p.get("estimated_precision")),
            "estimated_recall": clean(p.get("estimated_recall")),
            "precision_breach": bool(p.get("precision_breach")),
            "estimated_precision_breach": bool(p.get("estimated_precision_breach")),
            "calibration_drift": bool(p.get("calibration_drift")),
            "min_labels": s.monitor_min_labels,
        }
    return _envelope(
        "performance",
        ctx,
        latest=headline,
        empty=None if reports else _no_reports_text(s),
        charts=[precision.as_dict(), recall.as_dict(), daily.as_dict()],
    )


def drift_panel(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    reports = [r for r in _reports(ctx) if r["report"].get("features") is not None]
    x = [_epoch(r["window_end"]) for r in reports]
    names: list[str] = []
    for r in reports:
        for f in r["report"]["features"]:
            if f["name"] not in names:
                names.append(f["name"])
    by_report = [{f["name"]: f for f in r["report"]["features"]} for r in reports]
    latest_psi = (
        {n: (by_report[-1].get(n) or {}).get("psi") or 0.0 for n in names} if reports else {}
    )
    ever_drifted = {n for fs in by_report for n, f in fs.items() if f.get("drifted")}
    shown = (
        set(sorted(names, key=lambda n: -latest_psi.get(n, 0.0))[:FEATURES_SHOWN]) | ever_drifted
    )
    series = [
        Series(
            n,
            n,
            [clean((fs.get(n) or {}).get("psi")) for fs in by_report],
            show=n in shown,
        )
        for n in names
    ]
    series.append(
        Series(
            "psi_threshold",
            "PSI threshold",
            [s.monitor_psi_threshold] * len(x),
            reference=True,
            dash=True,
        )
    )
    chart = Chart(
        "psi",
        "Feature drift (PSI per feature, per report)",
        x,
        series,
        _no_reports_text(s),
        y_label="PSI",
        source="stored monitoring reports (drift_reports)",
    )
    verdict = None
    if reports:
        latest = reports[-1]
        doc = latest["report"]
        decision = doc.get("decision") or {}
        verdict = {
            "report_id": latest["id"],
            "created_at": _iso(latest["created_at"]),
            "window": doc.get("window"),
            "rows": doc.get("rows"),
            "model": doc.get("model"),
            "breach": bool(decision.get("breach")),
            "reasons": decision.get("reasons") or [],
            "triggered": bool(decision.get("triggered")),
            "suppressed": decision.get("suppressed"),
            "html_url": report_url(latest["id"]) if latest["html_key"] else None,
            "features": sorted(
                (
                    {
                        "name": f["name"],
                        "psi": clean(f.get("psi")),
                        "wasserstein": clean(f.get("wasserstein_norm")),
                        "p_value": f.get("p_value"),
                        "drifted": bool(f.get("drifted")),
                        "missing_drifted": bool(f.get("missing_drifted")),
                        "where": _where(f),
                    }
                    for f in doc["features"]
                ),
                key=lambda f: -(f["psi"] or 0.0),
            ),
            "min_samples": s.monitor_min_samples,
        }
    return _envelope(
        "drift",
        ctx,
        psi_threshold=s.monitor_psi_threshold,
        latest=verdict,
        reports=[
            {
                "id": r["id"],
                "created_at": _iso(r["created_at"]),
                "breached": r["breached"],
                "html_url": report_url(r["id"]) if r["html_key"] else None,
            }
            for r in reports
        ],
        empty=None if reports else _no_reports_text(s),
        charts=[chart.as_dict()],
    )


def _where(feature: dict[str, Any]) -> str | None:
    segments = feature.get("segments") or []
    if segments:
        return ", ".join(f"{s.get('column')}={s.get('value')}" for s in segments)
    return "population-wide" if feature.get("drifted") else None


# -- retraining: drift report -> MLflow run -> version -> gate -> deployment --------------------


def retraining_panel(ctx: Context) -> dict[str, Any]:
    s = ctx.settings
    view = registry(ctx)
    with ctx.storage.uow_factory() as uow:
        queries = DashboardQueries(uow.session)
        runs = queries.retrain_runs(MAX_RUNS)
        report_ids = [int(r.drift_report_id) for r in runs if r.drift_report_id is not None]
        reports = {
            i: {
                "id": i,
                "created_at": _iso(r.created_at),
                "breached": bool(r.breached),
                "reasons": ((r.report or {}).get("decision") or {}).get("reasons", [])[:3],
                "html_url": report_url(i) if r.html_key else None,
            }
            for i, r in queries.drift_reports_by_id(report_ids).items()
        }
        rows = [
            {
                "id": int(r.id),
                "started_at": _iso(r.started_at),
                "finished_at": _iso(r.finished_at),
                "status": r.status,
                "trigger": r.trigger,
                "reason": r.reason,
                "drift_report_id": r.drift_report_id,
                "mlflow_run_id": r.mlflow_run_id,
                "model_version": r.model_version,
                "promoted": r.promoted,
                "details": dict(r.details or {}),
            }
            for r in runs
        ]
    moves = alias_moves(_deployment_rows(ctx), view.history)
    chain = []
    for run in rows:
        version = view.version(run["model_version"])
        details = run.pop("details")
        gate = details.get("gate") or {}
        tags_gate = (version or {}).get("gate") or {}
        passed = gate.get("passed")
        if passed is None and tags_gate.get("result") in ("passed", "rejected"):
            passed = tags_gate["result"] == "passed"
        deployments = [m for m in moves if m["retrain_run_id"] == run["id"]]
        rolled_back = [
            m
            for m in moves
            if m["action"] == "rollback"
            and run["model_version"]
            and m["from"] == run["model_version"]
        ]
        chain.append(
            {
                **run,
                "drift_report": reports.get(run["drift_report_id"])
                if run["drift_report_id"] is not None
                else None,
                "version": {
                    "version": run["model_version"],
                    "registered_at": (version or {}).get("registered_at"),
                    "aliases": (version or {}).get("aliases", []),
                    "run_id": (version or {}).get("run_id"),
                }
                if run["model_version"]
                else None,
                "gate": {
                    "passed": passed,
                    "reason": gate.get("reason") or tags_gate.get("reason"),
                    "metrics": details.get("gate_metrics") or tags_gate.get("metrics"),
                }
                if passed is not None
                else None,
                "deployments": deployments,
                "rolled_back": rolled_back,
                "outcome": details.get("outcome_reason"),
                "data": {
                    k: details[k] for k in ("baseline_rows", "live_labelled_rows") if k in details
                },
            }
        )
    trigger = {
        "in_process": "a monitor breach starts it in the API process that saw the breach",
        "cli": "a scheduled `fatigue-guard retrain` starts it (monitor breaches only report)",
        "azureml": "a monitor breach submits the Azure ML retrain job",
    }[s.retrain_trigger]
    return _envelope(
        "retraining",
        ctx,
        runs=chain,
        registry_error=view.error,
        empty=None
        if chain
        else (
            f"No retraining run yet: {trigger}, at most once per {s.monitor_cooldown_h:g} h, or "
            "on demand with `fatigue-guard retrain`. Each run appears here as its chain: drift "
            "report -> MLflow run -> version -> gate -> deployment."
        ),
    )


# -- the recording pipeline and the edge ------------------------------------------------------


def _spool(settings: Settings) -> dict[str, Any]:
    directory = Path(settings.spool_dir)
    files = sorted(directory.glob("*.jsonl")) if directory.is_dir() else []
    sizes, oldest = 0, None
    for path in files:
        try:
            stat = path.stat()
        except OSError:  # replayed and deleted meanwhile
            continue
        sizes += stat.st_size
        oldest = stat.st_mtime if oldest is None else min(oldest, stat.st_mtime)
    return {
        "directory": str(directory),
        "files": len(files),
        "bytes": sizes,
        "oldest_at": _iso(datetime.fromtimestamp(oldest, UTC)) if oldest else None,
        "scope": "this host",
    }


def _edge(ctx: Context, production: str | None) -> dict[str, Any]:
    from fatigue_guard.edge.bundle import current_manifest

    try:
        manifest = current_manifest(ctx.storage.blobs)
    except Exception as exc:  # unreachable blob store or unreadable manifest: say which
        return {"bundle": None, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    if manifest is None:
        return {
            "bundle": None,
            "empty": "No edge bundle is published yet: the next promotion publishes one, or "
            "`fatigue-guard export-edge` now. Phones keep predicting online meanwhile.",
        }
    return {
        "bundle": {
            "model_version": manifest.model_version,
            "kind": manifest.kind,
            "threshold": manifest.threshold,
            "size_bytes": manifest.size_bytes,
            "sha256": manifest.sha256,
            "created_at": _iso(manifest.created_at),
        },
        "matches_production": production is None or manifest.model_version == production,
    }


def pipeline_panel(ctx: Context, hours: float) -> dict[str, Any]:
    s = ctx.settings
    now_s = _epoch(ctx.now)
    errors: dict[str, str] = {}
    outbox = None
    shipped = []
    try:
        with ctx.storage.uow_factory() as uow:
            queries = DashboardQueries(uow.session)
            state = queries.outbox_state()
            shipped = queries.shipped_batches(ctx.now - timedelta(hours=hours))
        outbox = {
            "pending": state.pending,
            "unclaimed": state.unclaimed,
            "failing": state.failing,
            "max_attempts": state.max_attempts,
            "last_error": state.last_error,
            "oldest_pending_at": _iso(state.oldest_pending_at),
            # The shipping lag right now: how long the oldest unshipped record has waited.
            "lag_s": clean(max(0.0, now_s - _epoch(state.oldest_pending_at)), 1)
            if state.oldest_pending_at
            else 0.0,
            "flush_max_age_s": s.blob_flush_max_age_s,
            "flush_max_records": s.blob_flush_max_records,
        }
    except Exception as exc:
        errors["sql"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    recorder = None
    if ctx.recorder_stats is not None:
        try:
            recorder = asdict(ctx.recorder_stats())
        except Exception as exc:
            errors["recorder"] = f"{type(exc).__name__}: {str(exc)[:200]}"

    intervals = ctx.history.intervals() if ctx.history is not None else []
    backlog_points = [i for i in intervals if i.outbox_backlog is not None]
    backlog = Chart(
        "outbox_backlog",
        "Outbox backlog (records not yet in the blob store)",
        [clean(i.at, 3) or 0.0 for i in backlog_points],
        [Series("backlog", "backlog", [i.outbox_backlog for i in backlog_points], "records")],
        "This process has not sampled its recorder yet: the backlog is plotted every "
        f"{ctx.history.interval_s if ctx.history else 10:g} s from when the API starts.",
        y_label="records",
        source="this process's fg_outbox_backlog, sampled",
    )
    lag_x: list[float] = []
    lag_max: list[float | None] = []
    lag_mean: list[float | None] = []
    if shipped:
        first = _epoch(shipped[0].flushed_at)
        span = max(now_s - first, 600.0)
        step = nice_step(span, base_s=10)
        starts = axis(now_s - span, now_s, step)
        worst: dict[int, float] = {}
        total: dict[int, float] = {}
        count: dict[int, int] = {}
        for batch in shipped:
            at = int(_epoch(batch.flushed_at) // step) * step
            wait = max(0.0, (batch.flushed_at - batch.oldest_created_at).total_seconds())
            worst[at] = max(worst.get(at, 0.0), wait)
            total[at] = total.get(at, 0.0) + wait
            count[at] = count.get(at, 0) + 1
        lag_x = [float(v) for v in starts]
        lag_max = [clean(worst[v], 2) if v in worst else None for v in starts]
        lag_mean = [clean(total[v] / count[v], 2) if v in count else None for v in starts]
    lag = Chart(
        "shipping_lag",
        "Blob shipping lag (oldest record's wait per batch)",
        lag_x,
        [
            Series("max", "max", lag_max, "s"),
            Series("mean", "mean", lag_mean, "s", dash=True),
        ],
        f"No feature batch was written to the blob store in the last {hours:g} h. A batch is "
        f"written when {s.blob_flush_max_records} records wait or the oldest has waited "
        f"{s.blob_flush_max_age_s:g} s; shipped rows are kept "
        f"{_hours(s.outbox_retention_s)}, so older batches are not shown.",
        y_label="seconds",
        source="SQL outbox rows written to the blob store",
    )
    share_empty = (
        f"No event was stored in the last {hours:g} h: the share of events phones predicted "
        "offline and synced (POST /v1/sync) appears here with the first stored prediction."
    )
    try:
        traffic = traffic_series(ctx, hours)
    except Exception as exc:  # SQL down: the spool, the recorder and the edge still answer
        errors.setdefault("sql", f"{type(exc).__name__}: {str(exc)[:200]}")
        traffic = TrafficSeries([], 10, [], [], [], None)
        share_empty = "The SQL database cannot be reached: the edge share returns with it."
    total = [a + b for a, b in zip(traffic.server, traffic.edge, strict=True)]
    edge_share = Chart(
        "edge_share",
        "Edge share of events",
        [float(v) for v in traffic.x],
        [Series("edge_share", "edge / all events", ratio(traffic.edge, total, 100.0), "%")],
        share_empty,
        y_label="%",
        source="SQL predictions, by received_at",
    )
    edge_total, all_total = sum(traffic.edge), sum(total)
    view = registry(ctx)
    return _envelope(
        "pipeline",
        ctx,
        hours=hours,
        outbox=outbox,
        spool=_spool(s),
        recorder=recorder,
        edge={
            **_edge(ctx, view.production),
            "events": int(edge_total),
            "share": clean(edge_total / all_total) if all_total else None,
            "production_version": view.production,
        },
        errors=errors,
        charts=[backlog.as_dict(), lag.as_dict(), edge_share.as_dict()],
    )


PANELS = ("serving", "process", "traffic", "performance", "drift", "retraining", "pipeline")
