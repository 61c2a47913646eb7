"""``fatigue-guard demo``: the whole product once, on embedded defaults (what `make demo` runs)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def demo(
    users: Annotated[int, typer.Option(min=50, help="Simulated users.")] = 1200,
    days: Annotated[int, typer.Option(min=14, help="Simulated days per user.")] = 30,
    requests: Annotated[int, typer.Option(min=1, help="Predictions sent over HTTP.")] = 2000,
    search_budget_s: Annotated[float, typer.Option(help="Hyperparameter search budget.")] = 20.0,
    seed: Annotated[int, typer.Option(help="Simulation and training seed.")] = 7,
) -> None:
    """Simulate -> train -> register -> serve -> devices send predictions -> summary."""
    from fatigue_guard.config import get_settings
    from fatigue_guard.demo import DemoConfig, run_demo

    started = time.perf_counter()
    config = DemoConfig(
        users=users, days=days, requests=requests, seed=seed, search_budget_s=search_budget_s
    )
    with console.status("starting") as status:

        def say(message: str) -> None:
            status.update(message)
            console.log(message)

        summary = run_demo(config, get_settings(), say)
    table = Table(title=f"fatigue-guard demo ({time.perf_counter() - started:.0f} s)")
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, value in summary.rows.items():
        table.add_row(key, value)
    console.print(table)
    console.print(
        f"State is in {summary.home}; inspect it with "
        f"FATIGUE_GUARD_HOME={summary.home} fatigue-guard models"
    )
