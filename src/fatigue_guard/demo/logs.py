"""Keep the demo's console for its own lines: library logs and chatter go to a file under HOME.

MLflow prints to stderr directly ("Successfully registered model ..."), draws download bars and
logs store migrations; scikit-learn and the lifecycle log warnings. All of it lands in
``demo.log`` beside the demo's state, where it can still be read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

# Loggers that install handlers of their own (not only the root's).
_OWN_HANDLERS = ("mlflow", "alembic")


@contextlib.contextmanager
def logs_to(path: Path) -> Iterator[Path]:
    # Imported first: MLflow installs its logger's handler on import, which would otherwise
    # come back after the reset below.
    import mlflow  # noqa: F401

    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in _OWN_HANDLERS)]
    saved = [(lg, lg.handlers[:], lg.propagate) for lg in loggers]
    saved_bar = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    for lg in loggers:
        lg.handlers = []
    logging.getLogger().addHandler(handler)
    for name in _OWN_HANDLERS:
        logging.getLogger(name).propagate = True
    try:
        with (
            path.open("a", encoding="utf-8") as stream,
            contextlib.redirect_stderr(stream),
            warnings.catch_warnings(),
        ):
            logging.captureWarnings(True)
            yield path
    finally:
        logging.captureWarnings(False)
        for lg, handlers, propagate in saved:
            lg.handlers, lg.propagate = handlers, propagate
        handler.close()
        if saved_bar is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = saved_bar
        sys.stderr.flush()
