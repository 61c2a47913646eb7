"""The full demo: the product keeping its own model healthy, once, on embedded defaults.

baseline trained and promoted -> API up (a real ``fatigue-guard serve``) -> phones through the
reference client (some offline on the edge model, syncing later; some giving feedback) -> a drift
scenario begins -> the monitor flags and names it -> retraining -> gate -> promotion -> the API's
model watcher swaps the new version in under live traffic -> the phones' edge bundle refreshes ->
the precision the phones now get, against the floor.

Every step is the product's own code path: ``train_and_register`` with the lifecycle bus,
``run_monitor`` whose breach hook is the retraining trigger's (``retrain_on_breach``: the
retraining job, its gate and its promotion, published on a ``lifecycle_bus`` that writes the
audit row and the edge bundle), the serve process's model watcher for the swap, and the client's
``refresh_model`` for the bundle. The demo only chooses the data, watches, and times.

The monitor plays the scheduler's part here, with the simulated calendar's ``now`` (the end of
the week the drift began): the API's own scheduler would wait hours before its first run.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx

from fatigue_guard.config import Settings
from fatigue_guard.demo.finding import Finding, describe
from fatigue_guard.demo.logs import logs_to
from fatigue_guard.demo.measures import Quality, latency, precision_against_floor, quality
from fatigue_guard.demo.phones import Answer, Fleet, LiveTraffic, PhoneConfig, Refresh, Traffic
from fatigue_guard.demo.server import (
    DEMO_SHUTDOWN_GRACE_S,
    field_env,
    free_port,
    prepare_home,
    running_api,
)
from fatigue_guard.demo.timeline import LoopConfig, Timeline, simulate_timeline
from fatigue_guard.lifecycle.bus import MessageBus
from fatigue_guard.lifecycle.gate import DeploymentEvent
from fatigue_guard.simulation import SCENARIOS
from fatigue_guard.storage.factory import Storage

log = logging.getLogger(__name__)

# Settings the serve process must share with the demo (the rest are its defaults).
API_FIELDS = ("model_poll_interval_s", "blob_flush_max_age_s", "shutdown_grace_s")
# After the first answer from the new version, the live phones keep going this long, so that
# "no failed request" covers both sides of the swap.
AFTER_SWAP_S = 2.0


@dataclass(frozen=True)
class Phase:
    title: str
    outcome: str
    seconds: float
    ok: bool = True


class Progress(Protocol):
    """Where the phases are shown: ``begin`` when one starts, ``end`` with its outcome."""

    def begin(self, title: str) -> None: ...

    def end(self, phase: Phase) -> None: ...


@dataclass
class LoopResult:
    config: LoopConfig
    home: Path
    base_url: str
    admin_token: str
    floor: float
    phases: list[Phase] = field(default_factory=list)
    baseline_version: str | None = None
    # The baseline's precision and recall on the recent days its training held out.
    baseline_holdout: tuple[float, float] | None = None
    new_version: str | None = None  # registered by the retraining job
    promoted: bool = False
    production_version: str | None = None  # at the end
    retrain_status: str | None = None
    retrain_reason: str | None = None
    gate: dict[str, float] = field(default_factory=dict)
    finding: Finding | None = None
    swap_seconds: float | None = None
    stale_after_swap: int = 0  # answers from the old version after the new one answered
    refreshes: list[Refresh] = field(default_factory=list)
    traffic: dict[str, Traffic] = field(default_factory=dict)
    quality: dict[str, Quality] = field(default_factory=dict)
    latency_ms: tuple[float, float] | None = None
    live_latency_ms: tuple[float, float] | None = None
    stored_sql: int = 0
    stored_blob: int = 0
    answered_or_synced: int = 0
    server_errors: int | None = None

    @property
    def dashboard_url(self) -> str:
        return f"{self.base_url}/dashboard"

    @property
    def failed_requests(self) -> int:
        return sum(t.failed for t in self.traffic.values())

    @property
    def precision_back(self) -> bool:
        after = self.quality.get("after")
        return bool(after and after.precision is not None and after.precision >= self.floor)

    @property
    def baseline_holds(self) -> bool:
        """The baseline's held-out precision is at or above the floor (unknown counts as not)."""
        return self.baseline_holdout is not None and self.baseline_holdout[0] >= self.floor

    @property
    def edge_versions(self) -> tuple[set[str | None], set[str | None]]:
        return {r.before for r in self.refreshes}, {r.after for r in self.refreshes}

    def phase(self, title: str) -> Phase | None:
        return next((p for p in self.phases if p.title == title), None)


class _Phases:
    """Begins and ends phases, timing each; a phase that raises ends as failed."""

    def __init__(self, progress: Progress, result: LoopResult) -> None:
        self.progress = progress
        self.result = result
        self._title: str | None = None
        self._started = 0.0

    def begin(self, title: str) -> None:
        self._title, self._started = title, time.perf_counter()
        self.progress.begin(title)

    def end(self, outcome: str, *, ok: bool = True, seconds: float | None = None) -> None:
        assert self._title is not None
        took = time.perf_counter() - self._started if seconds is None else seconds
        self.record(self._title, outcome, took, ok=ok)
        self._title = None

    def record(self, title: str, outcome: str, seconds: float, *, ok: bool = True) -> None:
        phase = Phase(title, outcome, seconds, ok)
        self.result.phases.append(phase)
        self.progress.end(phase)

    @property
    def open(self) -> bool:
        return self._title is not None

    @property
    def current(self) -> str | None:
        return self._title

    @contextlib.contextmanager
    def run(self, title: str) -> Iterator[_Outcome]:
        """``with phases.run(title) as out: ...; out.text, out.ok = ...``."""
        self.begin(title)
        out = _Outcome()
        try:
            yield out
        except BaseException as exc:
            if self.open:
                self.end(f"{type(exc).__name__}: {exc}", ok=False)
            raise
        if self.open:
            self.end(out.text, ok=out.ok)


@dataclass
class _Outcome:
    text: str = "done"
    ok: bool = True


def run_loop(
    config: LoopConfig,
    base: Settings,
    progress: Progress,
    *,
    hold: Callable[[LoopResult], None] | None = None,
) -> LoopResult:
    """Run every phase once; ``hold(result)`` is called while the API is still up."""
    token = secrets.token_urlsafe(18)
    settings = prepare_home(
        base,
        n_estimators=config.n_estimators,
        search_budget_s=config.search_budget_s,
        admin_token=token,
        model_poll_interval_s=config.model_poll_interval_s,
        blob_flush_max_age_s=config.blob_flush_max_age_s,
        shutdown_grace_s=DEMO_SHUTDOWN_GRACE_S,
    )
    result = LoopResult(
        config=config,
        home=settings.home_dir,
        base_url="",
        admin_token=token,
        floor=settings.precision_floor,
    )
    phases = _Phases(progress, result)
    with contextlib.ExitStack() as stack:
        stack.enter_context(logs_to(settings.home_dir / "demo.log"))
        timeline, storage = _baseline(config, settings, phases, result, stack)
        fleet = _api(config, settings, timeline, storage, phases, result, stack)
        with phases.run("phones") as out:
            traffic = result.traffic["normal"] = fleet.run("normal", timeline.normal)
            out.text, out.ok = _traffic_text(traffic), traffic.failed == 0
        with phases.run("drift begins") as out:
            traffic = result.traffic["drift"] = fleet.run("drift", timeline.drift)
            joiners = len(timeline.joiners)
            new = f"{joiners} new phones; " if joiners else ""
            out.text = f"{SCENARIOS[config.scenario]}: {new}{_traffic_text(traffic)}"
            out.ok = traffic.failed == 0

        live = LiveTraffic(
            fleet, timeline.live, phones=config.live_phones, rate_per_s=config.live_rate_per_s
        )
        try:
            event = _monitor_and_retrain(config, settings, timeline, storage, live, phases, result)
            if event is not None:
                _hot_swap(config, event, live, phases, result)
        finally:
            result.traffic["live"] = live.stop()

        if result.promoted:
            with phases.run("edge refresh") as out:
                result.refreshes = fleet.refresh(sorted(fleet.keys))
                out.text, out.ok = _refresh_text(result.refreshes, result.new_version)
        else:
            # Without drift there is nothing to swap, and that is the right outcome; after a
            # drift it means the loop stopped short, which must not pass for success.
            quiet = config.scenario == "none" and not (result.finding and result.finding.breach)
            why = f"v{result.production_version} still serves: nothing new was promoted"
            for title in ("hot swap", "edge refresh"):
                phases.record(title, f"not shown, {why}", 0.0, ok=quiet)
        with phases.run("after") as out:
            traffic = result.traffic["after"] = fleet.run("after", timeline.after)
            result.quality["after"] = quality(traffic.answers)
            out.text, out.ok = _after_text(result)
        with phases.run("records") as out:
            _count_records(storage, timeline, result)
            out.ok = result.stored_sql == result.stored_blob == result.answered_or_synced
            out.text = (
                f"{result.stored_sql:,} predictions in SQL, {result.stored_blob:,} in the blob "
                f"store (Parquet); {result.answered_or_synced:,} answered or synced"
            )
        _summarise(result)
        if hold is not None:
            hold(result)
    return result


# -- phases -------------------------------------------------------------------------------------


def _baseline(
    config: LoopConfig,
    settings: Settings,
    phases: _Phases,
    result: LoopResult,
    stack: contextlib.ExitStack,
) -> tuple[Timeline, Storage]:
    from fatigue_guard.contract.tables import write_table
    from fatigue_guard.lifecycle.deployments import DeploymentRecorder
    from fatigue_guard.lifecycle.registration import train_and_register
    from fatigue_guard.lifecycle.wiring import lifecycle_bus
    from fatigue_guard.storage.factory import build_storage

    with phases.run("baseline") as out:
        timeline = simulate_timeline(config)
        # A file, not a frame: the version's lineage names it, so the retraining job finds its
        # baseline and the edge export can refit a compact forest on the same rows.
        path = write_table(timeline.baseline, settings.home_dir / "baseline.parquet")
        storage = build_storage(settings)
        stack.callback(storage.close)
        storage.upgrade()
        bus = lifecycle_bus(settings, audit=DeploymentRecorder(storage, settings))
        trained = train_and_register(settings, path, seed=config.seed, bus=bus)
        if trained.registered is None or trained.alias != "production":
            raise RuntimeError("the baseline was not registered as production")
        result.baseline_version = result.production_version = trained.registered.version
        holdout = trained.metrics["holdout_time"]
        result.baseline_holdout = (holdout["precision"], holdout["recall"])
        out.text = (
            f"v{trained.registered.version} trained on {trained.rows:,} rows "
            f"({trained.users} people, {config.train_days} days), threshold "
            f"{trained.threshold:.3f}, {holdout_text(result)}; production; {_bundle_text(storage)}"
        )
        out.ok = result.baseline_holds
    return timeline, storage


def _api(
    config: LoopConfig,
    settings: Settings,
    timeline: Timeline,
    storage: Storage,
    phases: _Phases,
    result: LoopResult,
    stack: contextlib.ExitStack,
) -> Fleet:
    with phases.run("API") as out:
        users = sorted(timeline.cohort["user_id"].unique())
        keys = {u: storage.create_device_key(u, label="demo phone").plaintext for u in users}
        port = free_port()
        result.base_url = stack.enter_context(
            running_api(settings, port, extra_env=field_env(settings, API_FIELDS))
        )
        fleet = Fleet(
            result.base_url,
            keys,
            timeline.cohort,
            settings.home_dir / "phones",
            PhoneConfig(
                offline_share=config.offline_share,
                offline_period=config.offline_period,
                feedback_share=config.feedback_share,
                concurrency=config.concurrency,
                seed=config.seed,
            ),
        )
        out.text = (
            f"fatigue-guard serve at {result.base_url} serving v{result.baseline_version} "
            f"(model watcher polls every {config.model_poll_interval_s:g} s); "
            f"{len(keys)} device keys issued; dashboard {result.dashboard_url}"
        )
    return fleet


class _ObservedBus(MessageBus):
    """The lifecycle bus, with a look before and after its subscribers run.

    Before: the alias has just moved (the gate passed). After: the audit row is written and the
    edge bundle published.
    """

    def __init__(
        self,
        inner: MessageBus,
        before: Callable[[DeploymentEvent], None],
        after: Callable[[DeploymentEvent], None],
    ) -> None:
        super().__init__()
        self.inner, self.before, self.after = inner, before, after

    def publish(self, event: object) -> None:
        if isinstance(event, DeploymentEvent):
            self._look(self.before, event)
        self.inner.publish(event)
        if isinstance(event, DeploymentEvent):
            self._look(self.after, event)

    @staticmethod
    def _look(look: Callable[[DeploymentEvent], None], event: DeploymentEvent) -> None:
        # Watching must never change what it watches: an error here would reach the retraining
        # job as a failure of a promotion that has happened.
        try:
            look(event)
        except Exception:
            log.exception("the demo could not show deployment %s", event.version)


def _monitor_and_retrain(
    config: LoopConfig,
    settings: Settings,
    timeline: Timeline,
    storage: Storage,
    live: LiveTraffic,
    phases: _Phases,
    result: LoopResult,
) -> DeploymentEvent | None:
    """The monitor over the drift week; on a breach, its hook runs the retraining job.

    The always-on phones start once the drift week is in the blob store, and keep sending
    through monitoring, retraining and the swap.
    """
    from fatigue_guard.lifecycle.deployments import DeploymentRecorder
    from fatigue_guard.lifecycle.trigger import retrain_on_breach
    from fatigue_guard.lifecycle.wiring import lifecycle_bus
    from fatigue_guard.monitoring import run_monitor

    events: list[DeploymentEvent] = []
    marks: dict[str, float] = {}

    def alias_moved(event: DeploymentEvent) -> None:
        marks["moved"] = event.at.timestamp()
        _end_retraining(settings, phases, marks, event.version)
        gate = event.gate
        phases.record(
            "gate",
            f"passed: {gate.reason}" if gate else "passed",
            marks["moved"] - marks["registered"],
        )
        phases.begin("promotion")

    def published(event: DeploymentEvent) -> None:
        events.append(event)
        phases.end(
            f"production v{event.previous_version} -> v{event.version} "
            f"({event.actor}); audit row in SQL; {_bundle_text(storage)}"
        )

    bus = _ObservedBus(
        lifecycle_bus(settings, audit=DeploymentRecorder(storage, settings)),
        alias_moved,
        published,
    )
    retrain = retrain_on_breach(settings, storage, bus)

    def on_breach(report: Any) -> Any:
        result.finding = describe(report, config.scenario)
        phases.end(result.finding.text(), ok=result.finding.matches)
        phases.begin("retraining")
        marks["started"] = time.time()
        outcome = retrain(report)
        result.retrain_status, result.retrain_reason = outcome.status, outcome.reason
        result.new_version = outcome.model_version
        result.gate = dict(outcome.details.get("gate_metrics") or {})
        if not outcome.promoted:
            _retrain_failed(settings, phases, marks, outcome)
        return outcome

    phases.begin("monitor")
    _drain(storage)  # the monitor reads the blob store: everything answered must be there
    live.start()
    report = run_monitor(
        settings,
        window=timeline.monitor_window,
        now=timeline.monitor_end,
        storage=storage,
        on_breach=on_breach,
    )
    if phases.current == "monitor":
        result.finding = describe(report, config.scenario)
        why = report.decision.suppressed or "nothing to retrain"
        phases.end(f"{result.finding.text()}; {why}", ok=result.finding.matches)
    elif phases.open:  # the hook raised; run_monitor kept the report and logged the error
        phases.end(f"{phases.current} failed: see demo.log", ok=False)
    if events:
        result.promoted = True
        result.production_version = events[-1].version
        return events[-1]
    return None


def _registered_at(settings: Settings, version: str) -> tuple[float, dict[str, str]]:
    from fatigue_guard.registry.tracking import configure_mlflow

    client = configure_mlflow(settings)
    mv = client.get_model_version(settings.registered_model_name, version)
    return mv.creation_timestamp / 1000, dict(client.get_run(mv.run_id).data.tags)


def _end_retraining(
    settings: Settings, phases: _Phases, marks: dict[str, float], version: str
) -> None:
    registered, tags = _registered_at(settings, version)
    marks["registered"] = registered
    source = tags.get("data.source", "")
    labelled = re.search(r"(\d+) labelled", source)
    data = (
        f"the baseline and {int(labelled.group(1)):,} labelled live records (the phones' feedback)"
        if labelled
        else source
    )
    phases.end(
        f"v{version} trained on {int(tags.get('data.rows', 0)):,} rows: {data}; "
        "registered as staging",
        seconds=registered - marks["started"],
    )


def _retrain_failed(
    settings: Settings, phases: _Phases, marks: dict[str, float], outcome: Any
) -> None:
    if not phases.open:
        return
    if outcome.model_version is None:
        phases.end(f"{outcome.status}: {outcome.reason}", ok=False)
        return
    _end_retraining(settings, phases, marks, outcome.model_version)
    phases.record(
        "gate", f"{outcome.status}: {outcome.reason}", time.time() - marks["registered"], ok=False
    )


def _hot_swap(
    config: LoopConfig,
    event: DeploymentEvent,
    live: LiveTraffic,
    phases: _Phases,
    result: LoopResult,
) -> None:
    phases.begin("hot swap")
    deadline = time.monotonic() + config.swap_timeout_s
    first = live.first_answer_from(event.version)
    while first is None and time.monotonic() < deadline:
        time.sleep(0.1)
        first = live.first_answer_from(event.version)
    if first is None:
        phases.end(
            f"no answer from v{event.version} within {config.swap_timeout_s:.0f} s", ok=False
        )
        return
    time.sleep(AFTER_SWAP_S)
    answers = live.answers()
    result.swap_seconds = first.at - event.at.timestamp()
    # Asked after the new version had answered, yet answered by another: a swap that did not
    # hold. Requests already running at the swap finish on the old model, as they should.
    result.stale_after_swap = sum(
        1 for a in answers if a.sent > first.at and a.version not in (None, event.version)
    )
    failed = sum(a.failed for a in answers)
    phases.end(
        f"the API's model watcher swapped v{event.previous_version} -> v{event.version} "
        f"under live traffic: first v{event.version} answer {result.swap_seconds:.1f} s after "
        f"the alias moved; {len(answers):,} requests from {live.traffic.phones} phones during "
        f"monitoring, retraining and the swap, {failed} failed",
        ok=failed == 0 and result.stale_after_swap == 0,
        seconds=result.swap_seconds,
    )


# -- helpers ------------------------------------------------------------------------------------


def holdout_text(result: LoopResult) -> str:
    """The baseline's held-out figures, saying so plainly when precision is under the floor."""
    if result.baseline_holdout is None:
        return "held-out precision unknown"
    precision, recall = result.baseline_holdout
    text = f"held-out precision {precision_against_floor(precision, result.floor)}"
    if precision >= result.floor:
        return f"{text} / recall {recall:.3f} (floor {result.floor:.2f})"
    return f"{text} on the recent days training held out (recall {recall:.3f})"


def _drain(storage: Storage, timeout_s: float = 60.0) -> None:
    """Wait until every prediction recorded so far has been shipped to the blob store."""
    from sqlalchemy import text

    from fatigue_guard.storage.sql.tables import OUTBOX_PENDING

    deadline = time.monotonic() + timeout_s
    with storage.engine.connect() as connection:
        mark = connection.execute(text("SELECT max(id) FROM outbox")).scalar_one()
    while mark is not None:
        with storage.engine.connect() as connection:
            waiting = connection.execute(
                text("SELECT count(*) FROM outbox WHERE status = :pending AND id <= :mark"),
                {"pending": OUTBOX_PENDING, "mark": mark},
            ).scalar_one()
        if waiting == 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{waiting} records still not shipped after {timeout_s:.0f} s")
        time.sleep(0.2)


def _bundle_text(storage: Storage) -> str:
    from fatigue_guard.edge.bundle import current_manifest

    manifest = current_manifest(storage.blobs)
    if manifest is None:
        return "no edge bundle published"
    return (
        f"edge bundle v{manifest.model_version} ({manifest.kind}, "
        f"{manifest.size_bytes / 1e6:.1f} MB, threshold {manifest.threshold:.3f})"
    )


def _traffic_text(traffic: Traffic) -> str:
    answers = len(traffic.answers)
    edge = traffic.edge_answers
    return (
        f"{answers:,} moments from {traffic.phones} phones ({answers - edge:,} answered by the "
        f"API, {edge:,} on the edge model by {traffic.offline_phones} phones offline at times, "
        f"{traffic.synced:,} synced later); {traffic.feedback:,} feedback reports; "
        f"{traffic.failed} failed"
    )


def _refresh_text(refreshes: list[Refresh], version: str | None) -> tuple[str, bool]:
    updated = [r for r in refreshes if r.status == "updated"]
    before = sorted({str(r.before) for r in refreshes})
    now_on = {r.after for r in refreshes}
    ok = now_on == {version}
    return (
        f"{len(updated)}/{len(refreshes)} phones installed edge bundle v{version} (had "
        f"v{', v'.join(before)}; size, SHA-256 and ONNX load checked on the phone)",
        ok,
    )


def _after_text(result: LoopResult) -> tuple[str, bool]:
    after = result.quality["after"]
    version = result.production_version
    floor = result.floor
    traffic = result.traffic["after"]
    served = f"{len(traffic.answers):,} moments on v{version}, {traffic.failed} failed"
    if after.precision is None:
        return f"{served}; no alerts: precision cannot be judged", False
    if after.precision >= floor:
        where = "back at" if result.promoted else "at or above"
        return f"{served}; {after.text()}: precision {where} the floor {floor:.2f}", True
    return f"{served}; {after.text()}: precision BELOW the floor {floor:.2f}", False


def _count_records(storage: Storage, timeline: Timeline, result: LoopResult) -> None:
    from sqlalchemy import text

    _drain(storage)
    with storage.engine.connect() as connection:
        result.stored_sql = connection.execute(
            text("SELECT count(*) FROM predictions")
        ).scalar_one()
    end = datetime.now(UTC) + timedelta(days=2)
    result.stored_blob = len(storage.read_live_dataset(timeline.start, end))
    result.answered_or_synced = sum(
        sum(a.served_by == "server" for a in t.answers) + t.synced for t in result.traffic.values()
    )
    result.server_errors = _server_errors(result.base_url)


def _server_errors(base_url: str) -> int | None:
    """5xx answers the API counted (its Prometheus counter), or None if it cannot be read."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        body = httpx.get(f"{base_url}/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    total = 0.0
    for family in text_string_to_metric_families(body):
        if family.name == "fg_http_requests":
            total += sum(
                s.value
                for s in family.samples
                if s.name.endswith("_total") and s.labels.get("status", "").startswith("5")
            )
    return int(total)


def _summarise(result: LoopResult) -> None:
    for name in ("normal", "drift"):
        if name in result.traffic:
            result.quality[name] = quality(result.traffic[name].answers)
    everything: list[Answer] = [a for t in result.traffic.values() for a in t.answers]
    result.latency_ms = latency(everything)
    if "live" in result.traffic:
        result.live_latency_ms = latency(result.traffic["live"].answers)
