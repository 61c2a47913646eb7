"""``fatigue-guard monitor run`` and ``monitor report``: the monitoring job from the command line.

``run`` exit codes: 0 no breach (or ``--no-trigger``); 3 breach (so cron / CronJob wrappers can
alert on it). ``report`` exit code 4: no such report.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

EXIT_BREACH = 3
EXIT_NOT_FOUND = 4
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dhm])\s*$")

monitor_app = typer.Typer(
    name="monitor", no_args_is_help=True, help="Drift monitoring: run the job, fetch reports."
)


def parse_window(text: str) -> timedelta:
    """``7d``, ``36h`` or ``90m`` as a timedelta."""
    match = _DURATION.match(text)
    if not match:
        raise typer.BadParameter(f"window {text!r}: use a number with d, h or m (e.g. 7d)")
    value, unit = float(match.group(1)), match.group(2)
    return timedelta(**{{"d": "days", "h": "hours", "m": "minutes"}[unit]: value})


@monitor_app.command("run")
def run(
    window: Annotated[str, typer.Option(help="Live window by event time, e.g. 7d, 36h.")] = "7d",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the JSON report here.")
    ] = None,
    current: Annotated[
        Path | None,
        typer.Option(help="Contract-format table (Parquet/CSV) to judge instead of live data."),
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(help="Reference profile JSON (default: the production model's)."),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Decision threshold (default: the production model's).")
    ] = None,
    no_trigger: Annotated[
        bool,
        typer.Option(
            "--no-trigger",
            help="Report a breach but do not start a retrain (exit 0). Without it, a breach "
            "starts what FATIGUE_GUARD_RETRAIN_TRIGGER says (in_process: retrain here; cli: "
            "nothing; azureml: submit the Azure ML retrain job) and exits 3.",
        ),
    ] = False,
    store: Annotated[bool, typer.Option(help="Store the report (SQL + blob store).")] = True,
) -> None:
    """Compare a window of live data (or ``--current``) with the reference; store the report."""
    from rich.console import Console

    from fatigue_guard.config import get_settings
    from fatigue_guard.contract.tables import read_table
    from fatigue_guard.lifecycle.deployments import DeploymentRecorder
    from fatigue_guard.lifecycle.trigger import breach_hook
    from fatigue_guard.lifecycle.wiring import lifecycle_bus
    from fatigue_guard.model.profile import ReferenceProfile
    from fatigue_guard.monitoring import run_monitor
    from fatigue_guard.storage.factory import build_storage

    console = Console()
    settings = get_settings()
    profile = None
    if reference is not None:
        profile = ReferenceProfile.from_dict(json.loads(reference.read_text()))
    frame = read_table(current) if current is not None else None
    storage = build_storage(settings)
    bus = lifecycle_bus(settings, audit=DeploymentRecorder(storage, settings))
    report = run_monitor(
        settings,
        window=parse_window(window),
        current=frame,
        reference=profile,
        threshold=threshold,
        store=store,
        on_breach=None if no_trigger else breach_hook(settings, storage, bus),
        storage=storage,
    )
    doc = report.as_dict()
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(doc, indent=2))
    d = report.decision
    console.print(
        f"report {report.id if report.id is not None else '(not stored)'}: {report.rows} rows, "
        f"{len(report.drifted_features)} drifted features -> "
        + ("[red]BREACH[/red]" if d.breach else "[green]ok[/green]")
    )
    for reason in d.reasons:
        console.print(f"  - {reason}", markup=False)
    if d.breach:
        console.print(f"triggered: {d.triggered}; suppressed: {d.suppressed}", markup=False)
        if not no_trigger:
            raise typer.Exit(EXIT_BREACH)


@monitor_app.command("report")
def report(
    last: Annotated[bool, typer.Option("--last", help="The latest report (default).")] = False,
    report_id: Annotated[int | None, typer.Option("--id", help="A report by id.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output file: .html (default) or .json.")] = None,
) -> None:
    """Write a stored report to a file (HTML with plots, or its JSON)."""
    from fatigue_guard.config import get_settings
    from fatigue_guard.monitoring import load_report
    from fatigue_guard.storage.factory import build_storage

    if last and report_id is not None:
        raise typer.BadParameter("use --last or --id, not both")
    storage = build_storage(get_settings())
    try:
        doc, html = load_report(storage, report_id)
    except LookupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_NOT_FOUND) from exc
    finally:
        storage.close()
    target = out or Path(f"monitor-report-{doc.get('id')}.html")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix.lower() == ".json" or html is None:
        if target.suffix.lower() != ".json":
            target = target.with_suffix(".json")
        target.write_text(json.dumps(doc, indent=2))
    else:
        target.write_bytes(html)
    typer.echo(str(target))
