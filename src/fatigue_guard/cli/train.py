"""``fatigue-guard train`` and ``fatigue-guard score``.

Exit codes: 0 success; 2 no decision threshold reaches the precision floor (the run is logged in
MLflow with the attainable operating points, nothing is registered; with ``--advisory`` the
version is registered as advisory instead: it serves probabilities and never alerts); 3 the data
is unusable (too many rows break the contract, or a required column is missing); 4 no model to
score with; 5 ``--live`` but the data plane's database is not migrated (run
``fatigue-guard db upgrade``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

    from fatigue_guard.config import Settings

EXIT_NO_THRESHOLD = 2
EXIT_BAD_DATA = 3
EXIT_NO_MODEL = 4
EXIT_STORAGE = 5


def _fmt(value: float) -> str:
    return "-" if value != value else f"{value:.3f}"  # NaN-safe


def _instant(option: str, text: str | None) -> datetime | None:
    from fatigue_guard.training.live import parse_instant

    if text is None:
        return None
    try:
        return parse_instant(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 date or datetime", param_hint=option
        ) from None


def _read_live(
    settings: Settings, console: Console, since: datetime | None, until: datetime
) -> pd.DataFrame:
    """Labelled live records from the configured data plane, reported on the console."""
    from fatigue_guard.storage import SchemaOutOfDate
    from fatigue_guard.storage.factory import build_storage
    from fatigue_guard.training.live import live_summary, read_live_labelled

    storage = build_storage(settings)
    try:
        storage.check_schema()
        live = read_live_labelled(storage, since, until)
    except SchemaOutOfDate as exc:
        console.print(f"[bold red]Cannot read live records:[/] {exc}")
        raise typer.Exit(EXIT_STORAGE) from None
    finally:
        storage.close()
    rows, users = live_summary(live)
    window = f"{since.isoformat() if since else 'the start'} to {until.isoformat()} (exclusive)"
    console.print(
        f"live feedback: adding {rows:,} labelled records from {users:,} users, measured {window}"
    )
    return live


def _live_window_tags(since: datetime | None, until: datetime, rows: int) -> dict[str, str]:
    """The live window on the run: with the cutoff, the training table can be rebuilt."""
    return {
        "data.live.since": since.isoformat() if since else "all",
        "data.live.until": until.isoformat(),
        "data.live.labelled_rows": str(rows),
    }


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
    live: Annotated[
        bool,
        typer.Option(
            "--live/--no-live",
            help="Also train on the data plane's labelled live records "
            "(served predictions joined with feedback, one row per event_id).",
        ),
    ] = False,
    live_since: Annotated[
        str | None,
        typer.Option(
            "--live-since",
            metavar="DATE|DATETIME",
            help="With --live: only records measured from this instant (ISO 8601, UTC if no "
            "offset). Default: all.",
        ),
    ] = None,
    live_until: Annotated[
        str | None,
        typer.Option(
            "--live-until",
            metavar="DATE|DATETIME",
            help="With --live: cutoff, records measured before this instant (a date means its "
            "00:00 UTC). Default: now.",
        ),
    ] = None,
    advisory: Annotated[
        bool,
        typer.Option(
            "--advisory",
            help="When no threshold reaches the precision floor, register the version anyway as "
            "advisory: the API serves its probabilities with alert false and alerting "
            "'advisory', so features and feedback accrue until a retrained version meets the "
            "floor and the gate promotes it.",
        ),
    ] = False,
) -> None:
    """Train a RandomForest, pick the threshold at the precision floor, log and register it.

    The first version ever registered becomes `production`; later ones become `staging`
    (promote them with `fatigue-guard promote`). With `--live`, the labelled live records of the
    configured data plane join the `--data` table (a live row replaces a row with the same
    event_id).
    """
    from rich.console import Console
    from rich.table import Table

    from fatigue_guard.cli.models import cli_bus
    from fatigue_guard.config import get_settings
    from fatigue_guard.contract.frame import ContractError
    from fatigue_guard.lifecycle.registration import train_and_register
    from fatigue_guard.model.threshold import NoThresholdMeetsFloor
    from fatigue_guard.registry.alerting import advisory_summary
    from fatigue_guard.training import TooManyInvalidRows

    console = Console()
    settings = get_settings()
    since, until = _instant("--live-since", live_since), _instant("--live-until", live_until)
    if not live and (since or until):
        raise typer.BadParameter("needs --live", param_hint="--live-since/--live-until")
    until = until or datetime.now(UTC)
    if since is not None and since >= until:
        raise typer.BadParameter("must be before --live-until", param_hint="--live-since")
    live_frame = _read_live(settings, console, since, until) if live else None
    live_rows = 0 if live_frame is None else len(live_frame)
    try:
        with console.status("training") as status, cli_bus(settings) as bus:
            result = train_and_register(
                settings,
                data,
                # The first version ever goes straight to production: its audit row and edge
                # bundle follow as for any promotion.
                bus=bus,
                precision_floor=precision_floor,
                seed=seed,
                n_jobs=n_jobs,
                search_budget_s=search_budget_s,
                register=register,
                progress=lambda msg: (status.update(msg), console.log(msg)),
                live=live_frame if live_rows else None,
                tags=_live_window_tags(since, until, live_rows) if live else None,
                advisory=advisory,
            )
    except NoThresholdMeetsFloor as exc:
        console.print(f"[bold red]No model registered:[/] {exc}")
        console.print(
            f"MLflow run {exc.run_id} holds the attainable operating points; "
            "lower --precision-floor knowingly, improve the data, or register it with "
            "--advisory (probabilities served, alerts off) to start collecting live feedback."
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
    advisory_note = advisory_summary(result.version_tags)
    if advisory_note is not None:
        console.print(f"[bold yellow]{advisory_note}[/]")
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
