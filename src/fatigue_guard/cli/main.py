"""The ``fatigue-guard`` command: every job of the system is a verb here.

Verb modules import heavy libraries (MLflow, scikit-learn) inside the command functions so that
``fatigue-guard --help`` and light verbs start quickly.
"""

from __future__ import annotations

import logging

import typer

from fatigue_guard.cli.azureml import azureml_app
from fatigue_guard.cli.config_reference import config_reference
from fatigue_guard.cli.db import db_app
from fatigue_guard.cli.demo import demo
from fatigue_guard.cli.devices import simulate_devices
from fatigue_guard.cli.edge import export_edge
from fatigue_guard.cli.ingest import import_app
from fatigue_guard.cli.keys import keys_app
from fatigue_guard.cli.models import models, promote, rollback
from fatigue_guard.cli.monitor import monitor_app
from fatigue_guard.cli.retrain import retrain
from fatigue_guard.cli.serve import serve
from fatigue_guard.cli.simulate import simulate
from fatigue_guard.cli.train import score, train

app = typer.Typer(
    name="fatigue-guard",
    no_args_is_help=True,
    add_completion=False,
    help="Fatigue-event prediction from wearable data, with a self-maintaining model.",
)


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO.")) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        # MLflow logs its own store migrations at INFO on every fresh store.
        logging.getLogger("mlflow").setLevel(logging.WARNING)


app.command("demo")(demo)
app.command("serve")(serve)
app.command("simulate")(simulate)
app.command("train")(train)
app.command("score")(score)
app.command("models")(models)
app.command("promote")(promote)
app.command("rollback")(rollback)
app.command("retrain")(retrain)
app.command("export-edge")(export_edge)
app.command("simulate-devices")(simulate_devices)
app.command("config-reference")(config_reference)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(monitor_app, name="monitor")
app.add_typer(azureml_app, name="azureml")
app.add_typer(import_app, name="import")

if __name__ == "__main__":
    app()
