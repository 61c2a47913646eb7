"""``fatigue-guard azureml``: render the Azure ML specs, submit them, run a job with its secrets.

Exit codes: 2 a missing setting or unknown part (the message names it).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

EXIT_CONFIG = 2

azureml_app = typer.Typer(
    name="azureml",
    no_args_is_help=True,
    help="Azure ML: environment, monitor/retrain jobs and schedule, online endpoint (blue/green).",
)


@azureml_app.command("render")
def render(
    out: Annotated[Path, typer.Option(help="Folder to write the YAML specs into.")],
) -> None:
    """Write every spec filled from the FATIGUE_GUARD_* settings (no Azure access)."""
    from fatigue_guard.config import get_settings
    from fatigue_guard.deploy.azureml import AzureMLConfigError, write_specs

    try:
        written = write_specs(get_settings(), out)
    except AzureMLConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from exc
    for path in written:
        typer.echo(str(path))


@azureml_app.command("submit")
def submit(
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Submit only these parts (repeatable): environment, datastore, endpoint, blue, "
            "green, monitor-schedule, monitor-job, retrain-job. Default: environment, datastore, "
            "endpoint, blue, monitor-schedule.",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Keep the rendered specs here (default: a temp folder).")
    ] = None,
) -> None:
    """Render, then create or update the specs in the workspace through MLClient."""
    from fatigue_guard.config import get_settings
    from fatigue_guard.deploy.azureml import DEFAULT_PARTS, AzureMLConfigError
    from fatigue_guard.deploy.azureml import submit as submit_specs

    settings = get_settings()
    with tempfile.TemporaryDirectory(prefix="fatigue-guard-azureml-") as tmp:
        try:
            results = submit_specs(settings, out or Path(tmp), only or DEFAULT_PARTS)
        except AzureMLConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_CONFIG) from exc
    for line in results:
        typer.echo(line)


@azureml_app.command(
    "exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def exec_with_secrets(
    command: Annotated[list[str], typer.Argument(help="The command to run, after --.")],
) -> None:
    """Read the secrets from FATIGUE_GUARD_AZUREML_KEY_VAULT into the environment, run COMMAND.

    For Azure ML command jobs, which cannot reference Key Vault secrets in their environment
    variables: the job's managed identity reads them here. A variable already set is kept.
    """
    from fatigue_guard.config import get_settings
    from fatigue_guard.deploy.azureml import AzureMLConfigError, secrets_from_key_vault

    try:
        found = secrets_from_key_vault(get_settings(), skip=set(os.environ))
    except AzureMLConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from exc
    os.environ.update(found)
    # Replace this process: the command's exit code is the job's, and no secret-holding parent
    # lingers beside it.
    # The job's own command line, by design.
    os.execvp(command[0], command)  # nosec B606
