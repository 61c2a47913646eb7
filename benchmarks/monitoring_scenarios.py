"""Hit and false-alarm rates of the monitor on the real-data situations, over more seeds than the
test suite pins.

    .venv/bin/python benchmarks/monitoring_scenarios.py [--seeds 10] [--people 90]
        [--situations none,device_offset,app_drops_steps,older_joiners,seasonal_sleep]

Each seed draws another resampled PMData cohort (``tests/monitoring/pmdata.py``: whole real people
with a per-person jitter, a 28-day reference, the 7-day window after it, the situation from day 2
of the window) and runs the monitor on the first window as ``tests/monitoring/test_real_data.py``
does. ``none`` runs twice per seed: a tenth of the people replaced, and all of them. Per situation
it prints how many windows breached, how many of those named the situation's own features and
segments (the test suite's criteria), and for ``older_joiners`` the evidence behind the verdict:
the RMSSD tail share and its p-value against the run's first Benjamini-Hochberg critical value.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.*

from tests.monitoring.helpers import monitor_settings
from tests.monitoring.pmdata import (
    DROPPING_APP,
    OFFSET_DEVICE,
    SITUATIONS,
    RealConfig,
    load_person_days,
    real_cohort,
)

from fatigue_guard.model.profile import ReferenceProfile
from fatigue_guard.monitoring import MonitorReport, run_monitor

SLEEP = {"sleep_duration_h", "sleep_efficiency", "waso_min", "sleep_debt_7d_h"}
RESTING_HR = {"resting_hr_bpm", "resting_hr_delta_bpm"}
JOINER_FEATURES = {"hrv_rmssd_ms", "resting_hr_bpm"}


def _drifted(report: MonitorReport) -> set[str]:
    return {f.name for f in report.drifted_features}


def _named(report: MonitorReport) -> set[tuple[str, str]]:
    return {
        (s["column"], s["value"])
        for f in report.features
        for s in [*f.segments, *f.missing_segments, *f.range_segments]
    }


def _right(situation: str) -> Callable[[MonitorReport], bool]:
    """Whether a breaching report blames what the situation changed (the tests' criteria)."""
    if situation == "device_offset":
        return lambda r: (
            bool(_drifted(r) & RESTING_HR)
            and _drifted(r) <= RESTING_HR
            and (_named(r) == {("device_model", OFFSET_DEVICE)})
        )
    if situation == "app_drops_steps":
        return lambda r: (
            {f.name for f in r.features if f.missing_drifted} == {"steps_24h"}
            and (_named(r) == {("app_version", DROPPING_APP)} and not _drifted(r))
        )
    if situation == "seasonal_sleep":
        return lambda r: bool(_drifted(r) & SLEEP) and not _named(r)
    if situation == "older_joiners":
        return lambda r: bool(_drifted(r) & JOINER_FEATURES) and not _named(r)
    return lambda r: False


def _joiner_evidence(report: MonitorReport) -> str:
    hrv = next(p for p in report.persons if p.name == "hrv_rmssd_ms")
    below = next(t for t in hrv.tails if t.side == "below")
    first = 0.01 / report.tests
    return (
        f"RMSSD below range {below.reference_share:.2f} -> {below.current_share:.2f} "
        f"p={below.p_value:.5f} (first BH level {first:.1e}); mean of means "
        f"{hrv.difference:+.1f} ms p={hrv.p_value:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--people", type=int, default=90)
    parser.add_argument("--situations", default=",".join(SITUATIONS))
    args = parser.parse_args()
    days = load_person_days()
    settings = monitor_settings()
    started = time.perf_counter()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.seeds} seeds, {args.people} people")
    print("| situation | windows | breaches | with the right attribution |")
    print("|---|---|---|---|")
    notes: list[str] = []
    for situation in args.situations.split(","):
        churns = (0.1, 1.0) if situation == "none" else (0.1,)
        for churn in churns:
            breaches = right = runs = 0
            for seed in range(args.seeds):
                config = RealConfig(situation, seed, people=args.people, churn=churn)
                cohort = real_cohort(config, days)
                report = run_monitor(
                    settings,
                    current=cohort.window,
                    reference=ReferenceProfile.from_frame(cohort.reference),
                    threshold=0.5,
                    store=False,
                    html=False,
                )
                runs += 1
                breaches += report.decision.breach
                right += report.decision.breach and _right(situation)(report)
                if situation == "older_joiners":
                    notes.append(f"seed {seed}: {report.tests} tests; {_joiner_evidence(report)}")
            label = f"{situation} (churn {churn:g})" if situation == "none" else situation
            print(f"| {label} | {runs} | {breaches} | {right if situation != 'none' else '-'} |")
    for note in notes:
        print(note)
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
