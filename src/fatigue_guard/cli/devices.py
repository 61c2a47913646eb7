"""``fatigue-guard simulate-devices``: N simulated phones against a running API.

Each simulated user (cohort simulator) is a real :class:`~fatigue_guard.client.FatigueClient`
with its own data directory; a share of them goes offline for periods and syncs when it comes
back. Device keys are issued in the data plane this process's settings point to (the API's).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer


def simulate_devices(
    api_url: Annotated[str, typer.Option("--api-url", help="Base URL of the running API.")] = (
        "http://127.0.0.1:8000"
    ),
    devices: Annotated[int, typer.Option("--devices", min=1, help="Simulated devices.")] = 20,
    days: Annotated[int, typer.Option("--days", min=1, help="Days of data per device.")] = 7,
    offline_share: Annotated[
        float,
        typer.Option("--offline-share", min=0.0, max=1.0, help="Share of devices going offline."),
    ] = 0.3,
    offline_period: Annotated[
        int, typer.Option("--offline-period", min=1, help="Moments per offline/online period.")
    ] = 5,
    feedback_share: Annotated[
        float, typer.Option("--feedback-share", min=0.0, max=1.0, help="Moments reported on.")
    ] = 0.2,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64)] = 4,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", file_okay=False, help="Device folders; default: a temp dir."),
    ] = None,
) -> None:
    """Run simulated devices through the reference client; print what was served and synced."""
    from rich.console import Console
    from rich.table import Table

    from fatigue_guard.client.devices import DeviceSimConfig, run_devices
    from fatigue_guard.config import get_settings
    from fatigue_guard.simulation import CohortConfig, simulate_cohort
    from fatigue_guard.storage.factory import build_storage

    console = Console()
    cohort = simulate_cohort(CohortConfig(users=devices, days=days, seed=seed))
    storage = build_storage(get_settings())
    try:
        keys = {
            str(u): storage.create_device_key(str(u), label="simulated device").plaintext
            for u in cohort["user_id"].unique()
        }
    finally:
        storage.close()
    config = DeviceSimConfig(
        offline_share=offline_share,
        offline_period=offline_period,
        feedback_share=feedback_share,
        concurrency=concurrency,
        seed=seed,
    )
    with tempfile.TemporaryDirectory(prefix="fg-devices-") as tmp:
        root = data_dir or Path(tmp)
        summary = run_devices(api_url, cohort, keys, root, config, progress=console.print)
    table = Table(title=f"{devices} simulated devices against {api_url}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in summary.as_dict().items():
        table.add_row(
            name.replace("_", " "), f"{value:.1f}" if isinstance(value, float) else str(value)
        )
    console.print(table)
    if summary.errors or summary.left_in_queues:
        raise typer.Exit(1)
