"""Monitoring benchmark: every signal + the stored report on N live records
read from the blob feature store, against Evidently's DataDriftPreset on the same data.

Usage::

    .venv/bin/python benchmarks/monitoring.py [--sizes 100000,500000,1000000,10000000]
        [--evidently-sizes 100000,500000] [--repeats 3] [--bench-python /tmp/bench-venv/bin/python]

Evidently needs pandas below 3, so it does not go into ``.venv``: it runs under the Python given
with ``--bench-python`` (default ``/tmp/bench-venv/bin/python``), a virtualenv with the project's
``bench`` extra. Create it once, from the repository root::

    python3 -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install -e '.[bench]'

Without it the script still measures fatigue-guard and says how to create it.

Each size: simulated rows (tiled from one simulated cohort of 2,500 users over 14 days, new
event/user ids per tile, so ten million rows are about 180,000 people) are written with the
feature store layout into a temporary local blob folder, straight from Arrow a few tiles at a
time (ten million rows in well under a minute), then ``run_monitor``
runs in a fresh child process (so its peak RSS is its own) reading them back by event time,
computing every signal, rendering the HTML and storing the report in SQLite + the blob store.
Evidently runs in the bench-only virtualenv (see above), on the same rows as Parquet, in a child
process too. Prints a markdown table of medians: wall and CPU time (the machine may be shared, so
CPU time is the steadier figure), peak RSS, CPU per million rows (constant when the cost is linear
in rows) and the speed-up over Evidently, then whether the largest size meets the out-of-core
target (:data:`TARGET_SECONDS` wall, :data:`TARGET_RSS_MB` peak RSS at ten million rows on 2 cores).

Timed: ``run_monitor`` alone, from reading the blob store to the stored report, including
matplotlib's import on the first report (a CLI run pays it; the scheduler once per process).
Not timed: the interpreter's start-up imports of the package, printed separately.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fatigue_guard.config import Settings
from fatigue_guard.contract.features import FEATURE_NAMES, FEATURES_VERSION
from fatigue_guard.model.profile import ReferenceProfile, build_reference_profile
from fatigue_guard.simulation import CohortConfig, simulate_cohort
from fatigue_guard.storage.blob.feature_store import SCHEMA, _to_parquet, partition_key
from fatigue_guard.storage.blob.stores import LocalBlobStore

THRESHOLD = 0.35
# Months of a large deployment on the 2 cores the monitor is sized for.
TARGET_ROWS, TARGET_SECONDS, TARGET_RSS_MB = 10_000_000, 60.0, 1500.0
BATCH_ROWS = 100_000
DEFAULT_BENCH_PYTHON = "/tmp/bench-venv/bin/python"
BENCH_VENV_HELP = (
    "python3 -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install -e '.[bench]'"
    "  (from the repository root)"
)


def synthetic_scores(frame: pd.DataFrame) -> np.ndarray:
    """A cheap, deterministic stand-in for the forest (scoring is not what is measured)."""
    z = (
        -2.2
        + 0.5 * frame["hours_awake"].fillna(8).to_numpy() / 8
        - 0.8 * (frame["sleep_duration_h"].to_numpy() - 7)
        - 0.3 * frame["resting_hr_delta_bpm"].fillna(0).to_numpy() / 4
    )
    return 1 / (1 + np.exp(-z))


def base_cohort(seed: int, scenario: str = "none") -> pd.DataFrame:
    frame = simulate_cohort(CohortConfig(users=2500, days=28, scenario=scenario, seed=seed))
    frame = frame[frame["measured_at"] >= frame["measured_at"].min() + timedelta(days=14)]
    frame = frame.reset_index(drop=True)
    frame["probability"] = synthetic_scores(frame)
    frame["alert"] = frame["probability"] >= THRESHOLD
    return frame


def tiled_features(base: pd.DataFrame, rows: int) -> pd.DataFrame:
    """The feature columns of ``rows`` rows from copies of ``base`` (Evidently's input)."""
    copies = -(-rows // len(base))
    features = base[list(FEATURE_NAMES)]
    return pd.concat([features] * copies, ignore_index=True).iloc[:rows]


def write_live(blobs: LocalBlobStore, base: pd.DataFrame, rows: int) -> None:
    """``rows`` live rows in the outbox's layout: one zstd Parquet file per batch and UTC date,
    feature-store schema. Copies of ``base`` (same 14 days) with event and user ids made unique
    per copy, built and written in Arrow a few copies at a time, so that ten million rows take
    about a minute and never sit in memory whole."""
    table = pa.Table.from_pandas(
        base.assign(
            event_id=base["event_id"].astype(str),
            user_id=base["user_id"].astype(str),
            received_at=base["measured_at"],
            threshold=THRESHOLD,
            model_name="fatigue-rf",
            model_version="1",
            served_by=np.where(np.arange(len(base)) % 3 == 0, "edge", "server"),
        )[[f.name for f in SCHEMA]],
        schema=SCHEMA,
        preserve_index=False,
    )
    copies = -(-rows // len(table))
    full = _by_day(table)
    # The last copy is cut short when ``rows`` is not a whole number of copies.
    last = _by_day(table.slice(0, rows - (copies - 1) * len(table)))
    # Copies per file: the per-day rows of a copy, stacked up to BATCH_ROWS.
    group = max(1, BATCH_ROWS // max(len(t) for t in full.values()))
    for first in range(0, copies, group):
        for day in sorted(full):
            parts = []
            for i in range(first, min(first + group, copies)):
                part = (last if i == copies - 1 else full).get(day)
                if part is None or not len(part):
                    continue
                suffix = pa.scalar(f"-{i}")
                parts.append(
                    part.set_column(
                        0, "event_id", pc.binary_join_element_wise(part["event_id"], suffix, "")
                    ).set_column(
                        1, "user_id", pc.binary_join_element_wise(part["user_id"], suffix, "")
                    )
                )
            if parts:
                key = partition_key(FEATURES_VERSION, day, f"batch-{first:05d}")
                blobs.put(key, _to_parquet(pa.concat_tables(parts)))


def _by_day(table: pa.Table) -> dict[Any, pa.Table]:
    """``table``'s rows by UTC date of ``measured_at``."""
    days = table["measured_at"].cast(pa.timestamp("us")).cast(pa.date32())
    return {
        day: table.filter(pc.equal(days, pa.scalar(day, pa.date32())))
        for day in pc.unique(days).to_pylist()
    }


PEAK_RSS = """
def peak_rss_mb():
    # VmHWM, not getrusage's ru_maxrss: after the parent's fork + exec, ru_maxrss keeps the
    # parent's peak (several GB here, with the tiled frames), which is not this process's.
    try:
        with open("/proc/self/status") as status:
            line = next(l for l in status if l.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

CHILD = (
    PEAK_RSS
    + """
import json, resource, sys, time
from datetime import datetime, timedelta
t0 = time.perf_counter()
from fatigue_guard.config import Settings
from fatigue_guard.monitoring import run_monitor
from fatigue_guard.model.profile import ReferenceProfile
from fatigue_guard.storage.factory import build_storage
home, profile, end, threshold = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
settings = Settings(home=home, database_url=None, azure_storage_connection_string=None)
storage = build_storage(settings)
reference = ReferenceProfile.from_dict(json.load(open(profile)))
imported, cpu = time.perf_counter(), time.process_time()
report = run_monitor(settings, now=datetime.fromisoformat(end), window=timedelta(days=15),
                     reference=reference, threshold=threshold, storage=storage)
done, cpu = time.perf_counter(), time.process_time() - cpu
print(json.dumps({"seconds": done - imported, "cpu": cpu, "imports": imported - t0,
                  "rows": report.rows, "breach": report.decision.breach,
                  "timings": report.timings_s,
                  "rss_mb": peak_rss_mb()}))
"""
)

EVIDENTLY_CHILD = (
    PEAK_RSS
    + """
import json, resource, sys, time
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2])
t, cpu = time.perf_counter(), time.process_time()
result = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
result.dict()
seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
print(json.dumps({"seconds": seconds, "cpu": cpu,
                  "rss_mb": peak_rss_mb()}))
"""
)


def run_child(args: list[str]) -> dict[str, object]:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,500000,1000000,10000000")
    parser.add_argument("--evidently-sizes", default="100000,500000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--bench-python",
        default=DEFAULT_BENCH_PYTHON,
        help="Python of a virtualenv with the `bench` extra (Evidently, pandas<3), which runs "
        f"Evidently; default: {DEFAULT_BENCH_PYTHON}. Create it with: {BENCH_VENV_HELP}",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    evidently_sizes = {int(s) for s in args.evidently_sizes.split(",") if s}
    bench_python = Path(args.bench_python)
    if not bench_python.exists():
        print(
            f"Evidently skipped: no Python at {bench_python}. Evidently needs pandas<3, so it runs "
            "from a virtualenv of its own with the `bench` extra; create it with\n"
            f"    {BENCH_VENV_HELP}\n"
            "or pass --bench-python PATH to such a virtualenv's Python.",
            file=sys.stderr,
        )
        evidently_sizes = set()

    print("simulating ...", file=sys.stderr)
    reference_rows = base_cohort(seed=11)
    live_base = base_cohort(seed=12, scenario="device_firmware")
    profile = build_reference_profile(
        reference_rows,
        reference_rows["probability"].to_numpy(),
        reference_rows["fatigue_event"].to_numpy(),
    )
    ReferenceProfile.from_dict(profile)
    results = []
    with tempfile.TemporaryDirectory(prefix="fg-bench-") as tmp:
        profile_path = Path(tmp) / "profile.json"
        profile_path.write_text(json.dumps(profile))
        ev_ref = Path(tmp) / "ev-reference.parquet"
        reference_rows[list(FEATURE_NAMES)].to_parquet(ev_ref)
        for size in sizes:
            home = Path(tmp) / f"home-{size}"
            settings = Settings(home=home, database_url=None, azure_storage_connection_string=None)
            from fatigue_guard.storage.factory import build_storage

            storage = build_storage(settings)
            storage.upgrade()
            storage.close()
            print(f"writing {size:,} rows to {home / 'blobs'} ...", file=sys.stderr)
            write_live(LocalBlobStore(settings.local_blob_root), live_base, size)
            end = (live_base["measured_at"].max() + timedelta(seconds=1)).isoformat()
            ours = [
                run_child(
                    [sys.executable, "-c", CHILD, str(home), str(profile_path), end, str(THRESHOLD)]
                )
                for _ in range(args.repeats)
            ]
            row = {
                "rows": size,
                "seconds": statistics.median(float(r["seconds"]) for r in ours),
                "cpu": statistics.median(float(r["cpu"]) for r in ours),
                "imports": statistics.median(float(r["imports"]) for r in ours),
                "rss_mb": max(float(r["rss_mb"]) for r in ours),
                "timings": ours[len(ours) // 2]["timings"],
                "breach": ours[0]["breach"],
                "read_rows": ours[0]["rows"],
            }
            if size in evidently_sizes:
                ev_cur = Path(tmp) / f"ev-current-{size}.parquet"
                tiled_features(live_base, size).to_parquet(ev_cur)
                runs = [
                    run_child([str(bench_python), "-c", EVIDENTLY_CHILD, str(ev_ref), str(ev_cur)])
                    for _ in range(max(1, args.repeats))
                ]
                row["ev_seconds"] = statistics.median(float(r["seconds"]) for r in runs)
                row["ev_cpu"] = statistics.median(float(r["cpu"]) for r in runs)
                row["ev_rss_mb"] = max(float(r["rss_mb"]) for r in runs)
            results.append(row)
            print(json.dumps(row), file=sys.stderr)
            shutil.rmtree(home)  # ten million rows are a few GB of Parquet

    print_table(results, len(reference_rows), args.repeats)


def print_table(results: list[dict[str, Any]], reference_rows: int, repeats: int) -> None:
    """The markdown comparison table, then each size's stage breakdown."""
    print(
        f"\nreference rows: {reference_rows:,}; features: {len(FEATURE_NAMES)}; "
        f"repeats: {repeats} (median); machine cores: {os.cpu_count()}; "
        f"load average at the end: {os.getloadavg()[0]:.1f}"
    )
    print(
        "\n| rows | monitor wall (s) | monitor CPU (s) | CPU s per 1M rows | peak RSS (MB) "
        "| Evidently wall (s) | Evidently CPU (s) | Evidently peak RSS (MB) "
        "| speed-up wall | speed-up CPU |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        per_million = r["cpu"] / r["rows"] * 1e6
        ours = f"| {r['rows']:,} | {r['seconds']:.2f} | {r['cpu']:.2f} | {per_million:.2f} "
        ours += f"| {r['rss_mb']:.0f} "
        if "ev_seconds" in r:
            theirs = (
                f"| {r['ev_seconds']:.2f} | {r['ev_cpu']:.2f} | {r['ev_rss_mb']:.0f} "
                f"| {r['ev_seconds'] / r['seconds']:.1f}x | {r['ev_cpu'] / r['cpu']:.1f}x |"
            )
        else:
            theirs = "| not run | - | - | - | - |"
        print(ours + theirs)
    for r in results:
        if r["rows"] >= TARGET_ROWS:
            ok = r["seconds"] <= TARGET_SECONDS and r["rss_mb"] <= TARGET_RSS_MB
            print(
                f"\ntarget at {r['rows']:,} rows: wall {r['seconds']:.1f} s "
                f"(<= {TARGET_SECONDS:.0f}), peak RSS {r['rss_mb']:.0f} MB "
                f"(<= {TARGET_RSS_MB:.0f}): {'met' if ok else 'MISSED'}"
            )
    print("\nbreakdown (median run; wall s per stage, cpu = whole run's CPU s):")
    for r in results:
        print(
            f"  {r['rows']:,}: {r['timings']}  breach={r['breach']}  "
            f"(package imports before the timer: {r['imports']:.2f} s)"
        )


if __name__ == "__main__":
    main()
