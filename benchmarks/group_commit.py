"""One group commit of the request path, through a SQLAlchemy session and through the driver.

The recorder commits each group of concurrent predictions (their rows and outbox rows) in one
transaction. ``storage/prediction_writer.py`` runs that transaction straight through the DB-API
driver on a connection of its own; the obvious alternative is a session (the unit of work every
other write uses), whose set-up, execution contexts and pool checkout cost more than SQLite's
own work. This measures both on the same SQLite file (``synchronous=FULL``, so every commit is
an fsync) in interleaved rounds: CPU and wall time per commit, medians over rounds.

    .venv/bin/python benchmarks/group_commit.py [--group 2] [--commits 2000] [--repeats 5]
        [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from fatigue_guard.config import Settings
from fatigue_guard.contract.features import FEATURE_NAMES
from fatigue_guard.simulation import CohortConfig, simulate_cohort
from fatigue_guard.storage.factory import build_storage
from fatigue_guard.storage.recording.prediction_writer import PredictionWriter
from fatigue_guard.storage.records import PredictionRecord
from fatigue_guard.storage.sql.unit_of_work import UnitOfWorkFactory

Commit = Callable[[Sequence[PredictionRecord]], object]
WARM_UP = 50  # commits per path before the measured rounds


def main() -> None:
    args = _parse()
    with tempfile.TemporaryDirectory(prefix="fg-group-commit-") as home:
        storage = build_storage(Settings(home=Path(home), database_url=args.database_url))
        storage.upgrade()
        frame = simulate_cohort(CohortConfig(users=50, days=30, seed=0))
        writer = PredictionWriter(storage.engine)
        ways: dict[str, Commit] = {
            "SQLAlchemy session (unit of work)": _through_session(storage.uow_factory),
            "DB-API driver (PredictionWriter)": writer.add_many,
        }
        commits = len(ways) * (WARM_UP + args.commits * args.repeats)
        records = prediction_records(frame, args.group * commits)
        batches = iter(records[i : i + args.group] for i in range(0, len(records), args.group))
        for commit in ways.values():  # warm-up, not measured
            for _ in range(WARM_UP):
                commit(next(batches))
        results: dict[str, list[tuple[float, float]]] = {label: [] for label in ways}
        for _ in range(args.repeats):
            for label, commit in ways.items():
                results[label].append(_time(commit, batches, args.commits))
        writer.close()
        storage.close()
    database = "SQLite synchronous=FULL" if args.database_url is None else "PostgreSQL"
    print(
        f"\n### One group commit of {args.group} predictions, {database}, "
        f"{args.commits} commits per round, median of {args.repeats} interleaved rounds\n"
    )
    print("| path | CPU per commit (ms) | wall per commit (ms) | CPU vs driver |")
    print("|---|---:|---:|---:|")
    driver_cpu = statistics.median(c for c, _ in results["DB-API driver (PredictionWriter)"])
    for label, runs in results.items():
        cpu = statistics.median(c for c, _ in runs)
        wall = statistics.median(w for _, w in runs)
        print(f"| {label} | {cpu:.3f} | {wall:.3f} | {cpu / driver_cpu:.1f}x |")


def prediction_records(frame: pd.DataFrame, n: int) -> list[PredictionRecord]:
    """``n`` answered predictions (fresh event ids) built from the simulated rows."""
    rows = frame.sample(n, replace=True, random_state=0)
    features = rows.loc[:, list(FEATURE_NAMES)].astype("object")
    features = features.where(features.notna(), None)
    now = datetime.now(UTC)
    return [
        PredictionRecord(
            event_id=uuid.uuid4(),
            user_id=row.user_id,
            measured_at=row.measured_at.to_pydatetime(),
            received_at=now,
            features=dict(zip(FEATURE_NAMES, values, strict=True)),
            fatigue_probability=0.25,
            alert=False,
            threshold=0.5,
            model_name="fatigue-rf",
            model_version="1",
            device_model=row.device_model,
            platform=row.platform,
            app_version=row.app_version,
        )
        for row, values in zip(
            rows.itertuples(), features.itertuples(index=False, name=None), strict=True
        )
    ]


def _through_session(uow_factory: UnitOfWorkFactory) -> Commit:
    def commit(records: Sequence[PredictionRecord]) -> object:
        with uow_factory(write=True) as uow:
            inserted = uow.predictions.add_many(records)
            uow.commit()
        return inserted

    return commit


def _time(commit: Commit, batches: object, n: int) -> tuple[float, float]:
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(n):
        commit(next(batches))  # type: ignore[call-overload]
    return (time.thread_time() - cpu) / n * 1e3, (time.perf_counter() - wall) / n * 1e3


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", type=int, default=2, help="predictions per commit")
    parser.add_argument("--commits", type=int, default=2000, help="commits per round and path")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    parser.add_argument(
        "--database-url", default=None, help="an empty database to use instead of a SQLite file"
    )
    return parser.parse_args()


if __name__ == "__main__":
    main()
