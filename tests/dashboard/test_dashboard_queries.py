"""The dashboard's building blocks on their own: the read-only SQL (SQLite and PostgreSQL), the
metrics sampler's arithmetic, and the session cookie's signature and lifetime."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event

from fatigue_guard.serving.dashboard.charts import axis, nice_step, rebin
from fatigue_guard.serving.dashboard.panels import alias_moves
from fatigue_guard.serving.dashboard.sampler import (
    UPPER_BOUNDS,
    MetricsHistory,
    histogram_quantile,
)
from fatigue_guard.serving.dashboard.session import (
    SESSION_TTL_S,
    issue_session,
    session_expiry,
)
from fatigue_guard.serving.metrics import ApiMetrics
from fatigue_guard.storage.factory import Storage, build_storage
from fatigue_guard.storage.sql.dashboard_queries import DashboardQueries
from fatigue_guard.storage.sql.tables import DriftReport
from tests.storage.conftest import make_record, storage_settings

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def storage(database_url: str, tmp_path: Path) -> Iterator[Storage]:
    built = build_storage(storage_settings(tmp_path / "home", database_url=database_url))
    built.upgrade()
    yield built
    built.stop(timeout_s=2)
    built.close()


def _store(storage: Storage, offsets_s: list[int], served_by: str = "server") -> None:
    records = [
        dataclasses.replace(
            make_record(f"user-{i % 3}", served_by=served_by, probability=0.9 if i % 2 else 0.1),
            received_at=NOW - timedelta(seconds=offset),
        )
        for i, offset in enumerate(offsets_s)
    ]
    with storage.uow_factory(write=True) as uow:
        uow.predictions.add_many(records)
        uow.commit()


def test_prediction_buckets_count_by_time_origin_and_alert(storage: Storage) -> None:
    # Buckets are whole minutes since the epoch; place records well inside two of them.
    minute = int(NOW.timestamp()) // 60 * 60
    base = NOW.timestamp() - minute  # seconds into the current minute
    _store(storage, [int(base) + 70, int(base) + 80, int(base) + 90])  # the minute before
    _store(storage, [int(base) + 75], served_by="edge")
    _store(storage, [int(base) + 3 * 3600])  # outside the window below
    with storage.uow_factory() as uow:
        buckets = DashboardQueries(uow.session).prediction_buckets(
            NOW - timedelta(hours=1), NOW + timedelta(seconds=1), 60
        )
    got = {(b.start_s, b.served_by): (b.predictions, b.alerts) for b in buckets}
    assert got == {(minute - 120, "server"): (3, 1), (minute - 120, "edge"): (1, 0)}


def test_outbox_state_and_shipped_batches(storage: Storage) -> None:
    _store(storage, [30, 20, 10])
    with storage.uow_factory() as uow:
        state = DashboardQueries(uow.session).outbox_state()
    assert (state.pending, state.unclaimed, state.failing) == (3, 3, 0)
    assert state.oldest_pending_at is not None
    assert abs((datetime.now(UTC) - state.oldest_pending_at).total_seconds()) < 120
    assert storage.recorder.flusher.flush_once(force=True) == 3
    with storage.uow_factory() as uow:
        queries = DashboardQueries(uow.session)
        state = queries.outbox_state()
        shipped = queries.shipped_batches(datetime.now(UTC) - timedelta(hours=1))
        assert queries.shipped_batches(datetime.now(UTC) + timedelta(minutes=1)) == []
    assert (state.pending, state.oldest_pending_at) == (0, None)
    assert [b.rows for b in shipped] == [3]
    assert shipped[0].flushed_at >= shipped[0].oldest_created_at
    assert shipped[0].flushed_at.tzinfo is not None


def test_reports_runs_and_deployments_newest_window(storage: Storage) -> None:
    with storage.uow_factory(write=True) as uow:
        for day in range(5):
            uow.drift_reports.add(
                DriftReport(
                    created_at=NOW - timedelta(days=5 - day),
                    window_start=NOW - timedelta(days=6 - day),
                    window_end=NOW - timedelta(days=5 - day),
                    features_version=1,
                    model_version="1",
                    breached=day == 4,
                    report={"day": day},
                )
            )
        run = uow.retrain_runs.start("monitor", "drift", drift_report_id=5)
        for to in ("2", "3"):
            uow.deployments.add(
                model_name="fatigue-rf",
                alias="production",
                from_version=str(int(to) - 1),
                to_version=to,
                actor="test",
                reason="r",
                retrain_run_id=run.id,
            )
        uow.commit()
    with storage.uow_factory() as uow:
        queries = DashboardQueries(uow.session)
        reports = queries.drift_reports(3)
        assert [r.report["day"] for r in reports] == [2, 3, 4]  # the latest three, oldest first
        assert set(queries.drift_reports_by_id([1, 5])) == {1, 5}
        assert [r.drift_report_id for r in queries.retrain_runs(5)] == [5]
        assert [d.to_version for d in queries.deployments("fatigue-rf", 5)] == ["3", "2"]
        assert queries.deployments("other-model", 5) == []


def test_the_queries_only_read(storage: Storage) -> None:
    _store(storage, [5])
    statements: list[str] = []

    @event.listens_for(storage.engine, "before_cursor_execute")
    def capture(_conn, _cursor, statement, _params, _context, _many) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement.lstrip().split()[0].upper())

    try:
        with storage.uow_factory() as uow:
            q = DashboardQueries(uow.session)
            q.prediction_buckets(NOW - timedelta(hours=1), NOW, 10)
            q.outbox_state()
            q.shipped_batches(NOW - timedelta(hours=1))
            q.drift_reports(10)
            q.retrain_runs(10)
            q.deployments("fatigue-rf", 10)
            q.feedback_received(NOW - timedelta(hours=1), NOW)
    finally:
        event.remove(storage.engine, "before_cursor_execute", capture)
    assert statements and set(statements) == {"SELECT"}


def test_the_batch_id_floor_follows_the_flusher_batch_ids() -> None:
    from fatigue_guard.storage.recording.outbox import new_batch_id
    from fatigue_guard.storage.sql.dashboard_queries import _batch_id_floor

    moment = datetime(2026, 3, 1, 12, 30, 15, 250_000, tzinfo=UTC)
    assert new_batch_id(moment - timedelta(seconds=1)) < _batch_id_floor(moment)
    assert _batch_id_floor(moment) <= new_batch_id(moment)
    assert _batch_id_floor(moment) < new_batch_id(moment + timedelta(days=400))


def test_shipped_batches_walk_the_outbox_index(tmp_path: Path) -> None:
    """A day of shipped rows is kept; the lag query must not read them all (SQLite's plan)."""
    storage = build_storage(storage_settings(tmp_path / "home"))
    storage.upgrade()
    statements: list[tuple[str, object]] = []

    @event.listens_for(storage.engine, "before_cursor_execute")
    def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        statements.append((statement, parameters))

    try:
        with storage.uow_factory() as uow:
            DashboardQueries(uow.session).shipped_batches(NOW - timedelta(hours=1))
        event.remove(storage.engine, "before_cursor_execute", capture)
        statement, parameters = statements[-1]
        with storage.engine.connect() as connection:
            plan = connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters
            ).fetchall()
        details = [row[-1] for row in plan]
        assert not [d for d in details if d.startswith("SCAN outbox")], details
        assert any("ix_outbox_status_batch" in d for d in details), details
    finally:
        storage.close()


# -- the sampler ----------------------------------------------------------------------------------


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    counts = [0.0] * len(UPPER_BOUNDS)
    assert histogram_quantile(0.5, counts) is None
    # 100 observations: 50 at or below 1 ms, the other 50 in (1 ms, 2 ms].
    i1, i2 = UPPER_BOUNDS.index(0.001), UPPER_BOUNDS.index(0.002)
    cumulative = [0.0 if i < i1 else 50.0 if i < i2 else 100.0 for i in range(len(counts))]
    assert histogram_quantile(0.5, cumulative) == pytest.approx(0.001)
    assert histogram_quantile(0.75, cumulative) == pytest.approx(0.0015)
    # Everything in the open top bucket: the highest finite bound is all one can say.
    top = [0.0] * (len(counts) - 1) + [10.0]
    assert histogram_quantile(0.99, top) == UPPER_BOUNDS[-2]


def test_history_rates_exclude_probes_and_the_dashboard() -> None:
    metrics = ApiMetrics()
    now = [1000.0]
    history = MetricsHistory(metrics.registry, interval_s=10, keep=10, clock=lambda: now[0])
    history.sample()
    for _ in range(40):
        metrics.requests.labels("/v1/predictions", "200").inc()
        metrics.latency.labels("/v1/predictions").observe(0.004)
    for _ in range(10):
        metrics.requests.labels("/v1/predictions", "503").inc()
        metrics.latency.labels("/v1/predictions").observe(0.004)
    metrics.requests.labels("/v1/feedback", "404").inc()
    metrics.latency.labels("/v1/feedback").observe(0.004)
    for route in ("/healthz", "/metrics", "/v1/admin/dashboard/{panel}.json", "/dashboard"):
        for _ in range(100):
            metrics.requests.labels(route, "200").inc()
            metrics.latency.labels(route).observe(2.0)
    now[0] += 10
    history.sample()
    (interval,) = history.intervals()
    assert interval.requests == 51
    assert interval.requests / interval.seconds == pytest.approx(5.1)
    assert (interval.server_errors, interval.client_errors) == (10, 1)
    assert interval.p50_s is not None and 0.002 < interval.p50_s <= 0.005
    assert interval.p99_s is not None and interval.p99_s <= 0.005  # the 2 s probes are not in it
    # A process whose registry was replaced starts again: no negative interval.
    history._registry = ApiMetrics().registry
    now[0] += 10
    history.sample()
    assert len(history.intervals()) == 1


def test_series_rebin_onto_a_fixed_axis() -> None:
    assert nice_step(600, base_s=10) == 10
    assert nice_step(24 * 3600, base_s=10) == 1800
    assert nice_step(7 * 24 * 3600, base_s=60) % 60 == 0
    starts = axis(100, 160, 30)
    assert starts == [90, 120, 150]
    assert rebin([(90, 1), (100, 2), (150, 4), (300, 8)], starts, 30) == [3.0, 0.0, 4.0]


def test_alias_moves_merge_sql_rows_with_the_registry_history() -> None:
    at = NOW - timedelta(hours=1)
    sql = [
        {
            "id": 7,
            "at": at,
            "from": "2",
            "to": "1",
            "actor": "ops",
            "reason": "bad",
            "retrain_run_id": None,
        }
    ]
    history = [
        {
            "action": "initial",
            "version": "1",
            "previous_version": None,
            "at": "2026-01-01T00:00:00+00:00",
        },
        {
            "action": "rollback",
            "version": "1",
            "previous_version": "2",
            "at": (at + timedelta(seconds=2)).isoformat(),
            "actor": "ops",
        },
    ]
    moves = alias_moves(sql, history)
    assert [(m["id"], m["action"], m["recorded_in"]) for m in moves] == [
        (7, "rollback", ["sql", "mlflow"]),
        (None, "initial", ["mlflow"]),
    ]


# -- the session cookie ---------------------------------------------------------------------------


def test_session_cookie_is_signed_bounded_and_bound_to_the_token() -> None:
    now = time.time()
    value, expires = issue_session("token-a", now=now)
    assert expires == int(now) + SESSION_TTL_S
    assert session_expiry(value, "token-a", now=now) == expires
    assert session_expiry(value, "token-b", now=now) is None  # rotated token: sessions end
    assert session_expiry(value, "token-a", now=expires + 1) is None  # expired
    fmt, _, nonce, mac = value.split(".")
    longer = f"{fmt}.{expires + 3600}.{nonce}.{mac}"
    assert session_expiry(longer, "token-a", now=now) is None  # the expiry is signed
    for broken in ("", "v1", "v2.1.2.3", value + "x", value.replace("v1.", "v0.")):
        assert session_expiry(broken, "token-a", now=now) is None
