"""``fatigue-guard import``: real wearable exports to contract-format tables.

Exit codes: 0 the table was written; 2 the export cannot be imported (a file is missing or
unreadable, a bad option, or no report could become a row): the message names the file and the
participant.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from fatigue_guard.ingest import ImportResult

EXIT_BAD_EXPORT = 2
_TABLE_SUFFIXES = (".parquet", ".pq", ".csv")

import_app = typer.Typer(
    no_args_is_help=True,
    help="Import real wearable exports as contract-format tables (what `train --data` reads).",
)


def _table_path(path: Path, option: str) -> Path:
    if path.suffix.lower() not in _TABLE_SUFFIXES:
        raise typer.BadParameter(f"{path}: use a .parquet or .csv file name", param_hint=option)
    return path


@import_app.command("fitbit")
def fitbit(
    export: Annotated[
        Path,
        typer.Argument(
            metavar="DIR",
            help="A participant folder holding fitbit/ (and pmsys/), or a folder of them "
            "(the folder names become user_id).",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", dir_okay=False, help="Output table (.parquet or .csv).")
    ],
    timezone: Annotated[
        str,
        typer.Option(
            "--timezone",
            help="The wearers' IANA time zone, e.g. Europe/Oslo. Fitbit writes sleep times as "
            "local wall time without an offset; a wrong zone moves every night against the "
            "reports.",
        ),
    ],
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            dir_okay=False,
            help="CSV of self-reports for everybody (user, time, score). Default: each "
            "participant's pmsys/wellness.csv.",
        ),
    ] = None,
    user_column: Annotated[
        str | None,
        typer.Option("--user-column", help="With --labels: the user column. Default: user."),
    ] = None,
    time_column: Annotated[
        str | None,
        typer.Option(
            "--time-column",
            help="With --labels: the report time column (ISO 8601; without an offset it is "
            "wall time in --timezone). Default: time.",
        ),
    ] = None,
    label_column: Annotated[
        str, typer.Option("--label-column", help="The score column the rule reads.")
    ] = "fatigue",
    label_rule: Annotated[
        str,
        typer.Option(
            "--label-rule",
            help="fatigue_event = score <op> number, op one of <= < >= > == != "
            "(PMSys fatigue: 1 very tired ... 5 very fresh, so '<=2').",
        ),
    ] = "<=2",
    rejected: Annotated[
        Path | None,
        typer.Option(
            "--rejected",
            dir_okay=False,
            help="Also write every report that did not become a row, with the reason.",
        ),
    ] = None,
) -> None:
    """Fitbit export + fatigue self-reports -> one row per person-day at the report time.

    A row holds only what was known at its report: the night that had ended, daily values up to
    the day before, personal baselines from earlier days. Features the export does not measure
    (HRV, steps, heart rate of the last hour, sleep-onset latency) are left missing.
    """
    from rich.console import Console

    from fatigue_guard.contract.tables import write_table
    from fatigue_guard.ingest import IngestError, LabelRule, LabelRuleError, import_fitbit
    from fatigue_guard.ingest.build import REJECTED_REASON_COLUMN

    _table_path(out, "--out")
    if rejected is not None:
        _table_path(rejected, "--rejected")
    if labels is None and (user_column or time_column):
        raise typer.BadParameter("needs --labels", param_hint="--user-column/--time-column")
    try:
        rule = LabelRule.parse(label_rule)
    except LabelRuleError as exc:
        raise typer.BadParameter(str(exc), param_hint="--label-rule") from None

    console = Console()
    try:
        with console.status(f"importing {export}"):
            result = import_fitbit(
                export,
                timezone=timezone,
                labels=labels,
                user_column=user_column or "user",
                time_column=time_column or "time",
                label_column=label_column,
                label_rule=rule,
            )
    except IngestError as exc:
        console.print(f"[bold red]Cannot import:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_BAD_EXPORT) from None

    _print_report(console, result)
    write_table(result.table, out)
    table = result.table
    console.print(
        f"wrote [bold]{len(table):,}[/] rows, {table['user_id'].nunique():,} participants, "
        f"fatigue events {table['fatigue_event'].mean():.1%} ({label_column} {result.label_rule})"
        f" -> {out}",
        highlight=False,
    )
    if rejected is not None and len(result.rejected):
        write_table(result.rejected, rejected)
        console.print(
            f"{len(result.rejected):,} reports that are not rows ({REJECTED_REASON_COLUMN}) "
            f"-> {rejected}",
            highlight=False,
        )


def _print_report(console: Console, result: ImportResult) -> None:
    from rich.table import Table

    summary = Table(title="Participants")
    summary.add_column("participant")
    for name in ("reports", "rows", "events", "excluded", "contract_invalid"):
        summary.add_column(name.replace("_", " "), justify="right")
    for participant, counts in result.summary.iterrows():
        summary.add_row(str(participant), *(f"{int(v):,}" for v in counts))
    console.print(summary)
    if result.exclusions:
        console.print("Reports that are not rows, by the first rule that stopped them:")
        for exclusion in result.exclusions:
            console.print(
                f"  {exclusion.reason}: {exclusion.rows:,}, e.g. {exclusion.examples[:2]}",
                highlight=False,
            )
    if result.contract.invalid_rows:
        console.print(f"[yellow]{result.contract.summary()}[/]", highlight=False)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
