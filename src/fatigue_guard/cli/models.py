"""``fatigue-guard models``, ``promote`` and ``rollback``: the registry from the command line.

Exit codes: 0 success; 1 the gate rejected the candidate (it stays registered, tagged with the
reason); 4 nothing to promote or roll back to.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

EXIT_REJECTED = 1
EXIT_NOTHING = 4


def _actor() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def models() -> None:
    """Table of registered versions: aliases, alerting, threshold, hold-out metrics, gate result.

    The alerting column says ``advisory`` for a version registered with ``train --advisory``
    (no threshold met the floor; it never alerts) with the operating points it could reach.
    """
    from rich.console import Console
    from rich.table import Table

    from fatigue_guard.config import get_settings
    from fatigue_guard.registry import list_versions
    from fatigue_guard.registry.alerting import advisory_summary

    settings = get_settings()
    rows = list_versions(settings)
    console = Console()
    if not rows:
        console.print(f"no versions of {settings.registered_model_name!r} registered yet")
        return
    table = Table(
        title=f"{settings.registered_model_name} @ {settings.effective_mlflow_tracking_uri}"
    )
    for col in (
        "version",
        "aliases",
        "created (UTC)",
        "alerting",
        "threshold",
        "precision",
        "recall",
        "PR-AUC",
        "beats baselines",
        "gate",
        "gate reason",
    ):
        table.add_column(col, overflow="fold")
    for r in rows:
        t = r.tags
        table.add_row(
            r.version,
            ", ".join(r.aliases) or "-",
            r.created.strftime("%Y-%m-%d %H:%M"),
            advisory_summary(t) or "on",
            f"{r.threshold:.4f}" if r.threshold is not None else "-",
            t.get("holdout.precision", "-"),
            t.get("holdout.recall", "-"),
            t.get("holdout.pr_auc", "-"),
            t.get("beats_baselines", "-"),
            t.get("gate.result", "initial" if "deployment.initial.at" in t else "-"),
            t.get("gate.reason", "-"),
        )
    console.print(table)


def promote(
    version: Annotated[
        str | None,
        typer.Option("--version", help="Version to promote; default: the staging alias."),
    ] = None,
    reason: Annotated[
        str, typer.Option(help="Why (recorded with the deployment).")
    ] = "manual promotion",
    holdout: Annotated[
        Path | None,
        typer.Option(
            "--holdout",
            exists=True,
            dir_okay=False,
            help="Labelled table to judge on; default: the candidate's recent hold-out.",
        ),
    ] = None,
) -> None:
    """Run the validation gate on a candidate and make it production if it passes."""
    from rich.console import Console

    from fatigue_guard.config import get_settings
    from fatigue_guard.contract.tables import read_table
    from fatigue_guard.lifecycle.gate import DeploymentError
    from fatigue_guard.lifecycle.gate import promote as do_promote

    console = Console()
    settings = get_settings()
    try:
        with cli_bus(settings) as bus:
            outcome = do_promote(
                settings,
                version,
                actor=_actor(),
                reason=reason,
                holdout=read_table(holdout) if holdout is not None else None,
                bus=bus,
            )
    except DeploymentError as exc:
        console.print(f"[bold red]{exc}[/]")
        raise typer.Exit(EXIT_NOTHING) from None
    gate = outcome.gate
    if not outcome.promoted:
        console.print(f"[bold red]gate rejected v{gate.candidate_version}:[/] {gate.reason}")
        raise typer.Exit(EXIT_REJECTED)
    console.print(
        f"[green]v{gate.candidate_version} is production[/] "
        f"(was v{gate.production_version or '-'}): {gate.reason}"
    )


def rollback(
    reason: Annotated[
        str, typer.Option(help="Why (recorded with the deployment).")
    ] = "manual rollback",
) -> None:
    """Move production back to the version the current one replaced."""
    from rich.console import Console

    from fatigue_guard.config import get_settings
    from fatigue_guard.lifecycle.gate import DeploymentError
    from fatigue_guard.lifecycle.gate import rollback as do_rollback

    console = Console()
    settings = get_settings()
    try:
        with cli_bus(settings) as bus:
            event = do_rollback(settings, actor=_actor(), reason=reason, bus=bus)
    except DeploymentError as exc:
        console.print(f"[bold red]{exc}[/]")
        raise typer.Exit(EXIT_NOTHING) from None
    console.print(f"[green]production is v{event.version} again[/] (was v{event.previous_version})")


@contextmanager
def cli_bus(settings: Any) -> Iterator[Any]:
    """The lifecycle bus of a command: see :func:`fatigue_guard.lifecycle.wiring.operator_bus`;
    a deployment row the SQL DB did not take is a warning on stderr."""
    from fatigue_guard.lifecycle.wiring import operator_bus

    with operator_bus(settings) as (bus, audit):
        yield bus
    if audit.failures:
        typer.echo("warning: the deployment was not recorded in the SQL DB", err=True)
