"""``fatigue-guard retrain``: the retraining job, for cron / CronJob / Azure ML schedules."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

console = Console()

EXIT_CODES = {"promoted": 0, "skipped": 0, "rejected": 4, "failed": 1}


def retrain(
    reason: Annotated[str, typer.Option(help="Why (recorded on the run).")] = "scheduled",
    force: Annotated[
        bool, typer.Option("--force", help="Ignore the cool-down (the lease still applies).")
    ] = False,
) -> None:
    """Assemble baseline + live labelled data, train, gate, promote; one replica at a time."""
    from fatigue_guard.config import get_settings
    from fatigue_guard.lifecycle.deployments import DeploymentRecorder
    from fatigue_guard.lifecycle.retrain import run_retraining
    from fatigue_guard.lifecycle.wiring import lifecycle_bus
    from fatigue_guard.storage.factory import build_storage

    settings = get_settings()
    storage = build_storage(settings)
    storage.check_schema()
    try:
        bus = lifecycle_bus(settings, audit=DeploymentRecorder(storage, settings))
        with console.status("retraining"):
            outcome = run_retraining(
                settings, storage, bus=bus, trigger="cli", reason=reason, ignore_cooldown=force
            )
    finally:
        storage.close()
    colour = {"promoted": "green", "skipped": "yellow"}.get(outcome.status, "red")
    console.print(f"[{colour}]{outcome.status}[/]: {outcome.reason}")
    if outcome.model_version:
        console.print(f"model version {outcome.model_version} (MLflow run {outcome.mlflow_run_id})")
    raise typer.Exit(EXIT_CODES[outcome.status])
