"""The whole loop end to end on a small configuration: a real ``serve`` process, phones through
the reference client, the monitor, the retraining job, the gate, the swap in the API, the edge
bundle on the phones; every phase in order with the outcome it exists to show."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from fatigue_guard.config import Settings
from fatigue_guard.demo.loop import LoopResult, Phase, run_loop
from fatigue_guard.demo.timeline import LoopConfig

PHASES = [
    "baseline",
    "API",
    "phones",
    "drift begins",
    "monitor",
    "retraining",
    "gate",
    "promotion",
    "hot swap",
    "edge refresh",
    "after",
    "records",
]
# Small enough to finish in about two minutes on a quiet 2-core machine; the seed is one whose
# cohort the monitor, the gate and the floor judge the same way as the default demo's.
SMALL = LoopConfig(users=160, seed=7, live_days=1, after_days=2)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.phases: list[Phase] = []

    def begin(self, title: str) -> None:
        self.events.append(("begin", title))

    def end(self, phase: Phase) -> None:
        self.events.append(("end", phase.title))
        self.phases.append(phase)


@pytest.mark.slow
def test_the_loop_shows_drift_retraining_swap_and_edge_refresh(tmp_path: Path) -> None:
    seen: dict[str, object] = {}

    def hold(result: LoopResult) -> None:
        # While the demo holds, the API and its dashboard are up with the token it printed.
        token = {"Authorization": f"Bearer {result.admin_token}"}
        seen["ready"] = httpx.get(f"{result.base_url}/readyz", headers=token, timeout=10).json()
        seen["dashboard"] = httpx.get(result.dashboard_url, headers=token, timeout=10)

    progress = Recorder()
    result = run_loop(SMALL, Settings(home=tmp_path), progress, hold=hold)

    assert [p.title for p in result.phases] == PHASES
    assert [p.title for p in progress.phases] == PHASES
    assert all(p.ok for p in result.phases), [p for p in result.phases if not p.ok]
    # "gate" is decided inside the retraining job: it is reported, not begun, by the loop.
    begun = [title for kind, title in progress.events if kind == "begin"]
    assert begun == [p for p in PHASES if p != "gate"]

    assert result.finding is not None and result.finding.breach
    assert "hrv_rmssd_ms" in result.finding.signals  # the older cohort's lower RMSSD, named
    assert result.baseline_version == "1"
    assert result.promoted and result.new_version == result.production_version == "2"
    assert result.retrain_status == "promoted"
    assert result.swap_seconds is not None and result.stale_after_swap == 0
    live = result.traffic["live"]
    assert {a.version for a in live.answers} == {"1", "2"}  # the swap happened under traffic

    assert result.failed_requests == 0 and result.server_errors == 0
    assert sum(t.edge_answers for t in result.traffic.values()) > 0  # offline phones
    assert sum(t.synced for t in result.traffic.values()) > 0
    assert sum(t.feedback for t in result.traffic.values()) > 0
    before, after = result.edge_versions
    assert before == {"1"} and after == {"2"}
    assert all(r.status == "updated" for r in result.refreshes)

    assert result.stored_sql == result.stored_blob == result.answered_or_synced > 0
    after_quality = result.quality["after"]
    assert after_quality.alerts > 0 and {a.version for a in result.traffic["after"].answers} == {
        "2"
    }

    assert seen["ready"]["checks"]["model"]["version"] == "2"  # type: ignore[index]
    dashboard = seen["dashboard"]
    assert isinstance(dashboard, httpx.Response) and dashboard.status_code == 200
    assert (tmp_path / "demo" / "demo.log").exists()
