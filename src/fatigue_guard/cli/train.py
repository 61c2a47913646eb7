"""``fatigue-guard train`` and ``fatigue-guard score``.

Exit codes: 0 success; 2 no decision threshold reaches the precision floor (the run is logged in
MLflow with the attainable operating points, nothing is registered); 3 the data is unusable (too
many rows break the contract, or a required column is missing); 4 no model to score with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

EXIT_NO_THRESHOLD = 2
EXIT_BAD_DATA = 3
EXIT_NO_MODEL = 4


def _fmt(value: float) -> str:
    return "-" if value != value else f"{value:.3f}"  # NaN-safe


def train(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            exists=True,
            dir_okay=False,
            help="Contract-format table (.parquet or .csv) with fatigue_event.",
        ),
    ],
    precision_floor: Annotated[
        float | None,
        typer.Option(
            "--precision-floor",
            min=0.01,
            max=0.99,
            help="Default: FATIGUE_GUARD_PRECISION_FLOOR (0.75).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for splits, search and forest.")] = 0,
    n_jobs: Annotated[int, typer.Option("--n-jobs", min=1, help="Cores for the forest.")] = 2,
    search_budget_s: Annotated[
        float,
        typer.Option(
            "--search-budget-s", min=0, help="Seconds of hyperparameter search (0 = defaults only)."
        ),
    ] = 60.0,
    register: Annotated[bool, typer.Option(help="Register the model version in MLflow.")] = True,
) -> None:
    """Train a RandomForest, pick the threshold at the precision floor, log and register it.

    The first version ever registered becomes `production`; later ones become `staging`
    (promote them with `fatigue-guard promote`).
    """
    from rich.console import Console
    from rich.table import Table

    from fatigue_guard.config import get_settings
    from fatigue_guard.contract.frame import ContractError
    from fatigue_guard.edge.publish import publishing_edge_bundles
    from fatigue_guard.training import NoThresholdMeetsFloor, TooManyInvalidRows, train_model

    console = Console()
    settings = get_settings()
    try:
        with console.status("training") as status, publishing_edge_bundles(settings):
            result = train_model(
                settings,
                data,
                precision_floor=precision_floor,
                seed=seed,
                n_jobs=n_jobs,
                search_budget_s=search_budget_s,
                register=register,
                progress=lambda msg: (status.update(msg), console.log(msg)),
            )
    except NoThresholdMeetsFloor as exc:
        console.print(f"[bold red]No model registered:[/] {exc}")
        console.print(
            f"MLflow run {exc.run_id} holds the attainable operating points; "
            "lower --precision-floor knowingly or improve the data."
        )
        raise typer.Exit(EXIT_NO_THRESHOLD) from None
    except (TooManyInvalidRows, ContractError) as exc:
        console.print(f"[bold red]Unusable training data:[/] {exc}")
        raise typer.Exit(EXIT_BAD_DATA) from None

    table = Table(
        title=f"Training run {result.run_id} "
        f"({result.rows:,} rows, {result.users:,} users, {result.seconds:.0f} s)"
    )
    table.add_column("evaluated on")
    for name in ("precision", "recall", "recall@floor", "PR-AUC", "ROC-AUC", "alert rate"):
        table.add_column(name, justify="right")
    keys = ("precision", "recall", "recall_at_floor", "pr_auc", "roc_auc", "alert_rate")
    labels = {
        "holdout_time": "model: recent days (hold-out)",
        "oof_user": "model: unseen users (OOF)",
    }
    for view, metrics in result.metrics.items():
        table.add_row(labels.get(view, view), *(_fmt(metrics[k]) for k in keys))
    for name, metrics in result.baselines.items():
        table.add_row(f"baseline: {name} (hold-out)", *(_fmt(metrics[k]) for k in keys))
    console.print(table)
    invalid = result.invalid_rows
    floor = precision_floor or settings.precision_floor
    console.print(
        f"threshold {result.threshold:.4f} (floor {floor:.2f}); "
        f"invalid rows excluded: {invalid['invalid_rows']} of {invalid['total_rows']}"
    )
    if not result.beats_baselines:
        console.print("[yellow]Warning: the model does not beat every baseline on recall@floor.[/]")
    if result.registered:
        console.print(
            f"registered {result.registered.name} v{result.registered.version} "
            f"-> alias [bold]{result.alias}[/]"
        )


def score(
    data: Annotated[
        Path,
        typer.Option("--data", exists=True, dir_okay=False, help="Contract-format table to score."),
    ],
    out: Annotated[Path, typer.Option("--out", help="Output table (.parquet or .csv).")],
    model_version: Annotated[
        str | None, typer.Option("--model-version", help="Registered version; default: production.")
    ] = None,
    rejected: Annotated[
        Path | None,
        typer.Option("--rejected", help="Also write the rows that break the contract here."),
    ] = None,
) -> None:
    """Batch-score a table: input rows + fatigue_probability, alert, model_version.

    Rows that break the feature contract are excluded from OUT and reported (see --rejected).
    """
    from rich.console import Console

    from fatigue_guard.config import get_settings
    from fatigue_guard.contract.frame import ContractError
    from fatigue_guard.contract.tables import read_table, write_table
    from fatigue_guard.training.batch import NoModelError, score_table

    console = Console()
    try:
        with console.status("scoring"):
            result = score_table(get_settings(), read_table(data), model_version=model_version)
    except NoModelError as exc:
        console.print(f"[bold red]{exc}[/]")
        raise typer.Exit(EXIT_NO_MODEL) from None
    except ContractError as exc:
        console.print(f"[bold red]Unusable input:[/] {exc}")
        raise typer.Exit(EXIT_BAD_DATA) from None
    write_table(result.scored, out)
    console.print(
        f"scored {len(result.scored):,} rows with {result.model.name} v{result.model.version} "
        f"(threshold {result.model.threshold:.4f}); "
        f"{int(result.scored['alert'].sum()):,} alerts -> {out}"
    )
    if result.report.invalid_rows:
        console.print(f"[yellow]{result.report.summary()}[/]")
        if rejected is not None:
            write_table(result.rejected, rejected)
            console.print(f"rejected rows -> {rejected}")
