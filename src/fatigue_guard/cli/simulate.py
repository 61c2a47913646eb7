"""``fatigue-guard simulate``: write a simulated cohort as a contract-format table."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from fatigue_guard.simulation.config import SCENARIOS

_SCENARIO_HELP = "Drift scenario: " + "; ".join(f"{k} ({v})" for k, v in SCENARIOS.items())


def simulate(
    users: Annotated[int, typer.Option("--users", min=1, help="Number of users.")] = 2000,
    days: Annotated[int, typer.Option("--days", min=1, help="Days per user.")] = 30,
    scenario: Annotated[str, typer.Option("--scenario", help=_SCENARIO_HELP)] = "none",
    drift_start: Annotated[
        int | None,
        typer.Option("--drift-start", min=0, help="First drifted day (default: days // 2)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed.")] = 0,
    out: Annotated[
        Path, typer.Option("--out", dir_okay=False, help="Output table (.parquet or .csv).")
    ] = Path("cohort.parquet"),
) -> None:
    """Simulate a cohort of wearable users and write it as a contract-format table."""
    from rich.console import Console

    from fatigue_guard.contract.tables import write_table
    from fatigue_guard.simulation import CohortConfig, simulate_cohort

    if scenario not in SCENARIOS:
        raise typer.BadParameter(f"choose one of: {', '.join(SCENARIOS)}", param_hint="--scenario")
    try:
        config = CohortConfig(
            users=users, days=days, scenario=scenario, drift_start=drift_start, seed=seed
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    console = Console()
    started = time.perf_counter()
    with console.status(f"simulating {users:,} users x {days} days"):
        frame = simulate_cohort(config)
        write_table(frame, out)
    elapsed = time.perf_counter() - started
    drift = (
        "" if config.effective_drift_start is None else f" from day {config.effective_drift_start}"
    )
    console.print(
        f"wrote [bold]{len(frame):,}[/] rows, {frame['user_id'].nunique():,} users, "
        f"prevalence {frame['fatigue_event'].mean():.1%}, scenario {scenario}{drift} "
        f"-> {out} in {elapsed:.1f} s"
    )
