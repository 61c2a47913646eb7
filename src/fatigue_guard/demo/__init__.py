"""The end-to-end demo, on embedded defaults only (SQLite, a local blob folder, a local MLflow
store) in a fresh folder under HOME, so it needs nothing started by hand and never touches other
state.

- :mod:`.loop`: ``fatigue-guard demo``, the whole loop: baseline, API, phones, drift, monitor,
  retraining, gate, promotion, hot swap under live traffic, edge refresh, precision after.
- :mod:`.quick`: ``fatigue-guard demo --quick``, train and serve 2,000 predictions, no drift.
- :mod:`.server` (the ``serve`` child process) and :mod:`.bodies` (plain HTTP traffic), which
  tests use too; :mod:`.phones`, :mod:`.timeline`, :mod:`.finding`, :mod:`.measures` serve the
  loop.

Only the light helpers are imported here: the loop and the quick demo pull in MLflow and
scikit-learn, which ``import fatigue_guard.demo`` should not.
"""

from fatigue_guard.demo.bodies import request_bodies, send_all, split_by_time
from fatigue_guard.demo.server import (
    field_env,
    free_port,
    prepare_home,
    running_api,
    settings_env,
    wait_ready,
)

__all__ = [
    "field_env",
    "free_port",
    "prepare_home",
    "request_bodies",
    "running_api",
    "send_all",
    "settings_env",
    "split_by_time",
    "wait_ready",
]
