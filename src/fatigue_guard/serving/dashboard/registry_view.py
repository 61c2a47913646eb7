"""The model registry as the dashboard shows it: versions, gate decisions, alias moves.

Read-only, through a plain MLflow client (as serving's own registry access does): nothing here
creates an experiment, moves an alias or writes a tag. A registry that cannot be reached is a
state to show, not an error: the rest of the dashboard does not depend on it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fatigue_guard.config import Settings

MAX_VERSIONS = 50


@dataclass
class RegistryView:
    """What the registry says, or why it could not say it (``error``)."""

    name: str
    versions: list[dict[str, Any]] = field(default_factory=list)  # newest first
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> version
    history: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    error: str | None = None

    def version(self, number: str | None) -> dict[str, Any] | None:
        return next((v for v in self.versions if v["version"] == number), None)

    @property
    def production(self) -> str | None:
        return self.aliases.get("production")


def _float(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _version_row(mv: Any, aliases_of: dict[str, list[str]]) -> dict[str, Any]:
    from fatigue_guard.registry.alerting import advisory_summary, alerting_of
    from fatigue_guard.registry.models import TAG_GATE_RESULT

    tags: dict[str, str] = dict(mv.tags or {})
    version = str(mv.version)
    deployed = {
        action: {
            "at": tags.get(f"deployment.{action}.at"),
            "by": tags.get(f"deployment.{action}.by"),
            "reason": tags.get(f"deployment.{action}.reason"),
        }
        for action in ("initial", "promote", "rollback")
        if f"deployment.{action}.at" in tags
    }
    gate_result = tags.get(TAG_GATE_RESULT) or ("initial" if "initial" in deployed else None)
    return {
        "version": version,
        "aliases": sorted(aliases_of.get(version, [])),
        "registered_at": datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).isoformat(),
        "run_id": mv.run_id,
        "threshold": _float(tags.get("threshold")),
        # "advisory": registered although no threshold met the floor; it never alerts.
        "alerting": alerting_of(tags),
        "alerting_note": advisory_summary(tags),
        "precision_floor": _float(tags.get("precision_floor")),
        "train_cutoff": tags.get("train_cutoff"),
        "holdout": {
            "precision": _float(tags.get("holdout.precision")),
            "recall": _float(tags.get("holdout.recall")),
            "pr_auc": _float(tags.get("holdout.pr_auc")),
            "alert_rate": _float(tags.get("holdout.alert_rate")),
        },
        "beats_baselines": tags.get("beats_baselines"),
        "gate": {
            "result": gate_result,
            "reason": tags.get("gate.reason"),
            "at": tags.get("gate.at"),
            "metrics": _json(tags.get("gate.metrics")),
        },
        "deployed": deployed,
        "previous_version": tags.get("deployment.previous_version"),
        "rolled_back": tags.get("deployment.rolled_back") == "true",
        "edge": {"kind": tags.get("edge.kind"), "sha256": tags.get("edge.sha256")},
    }


def read_registry(settings: Settings) -> RegistryView:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from fatigue_guard.lifecycle.gate import HISTORY_TAG
    from fatigue_guard.registry.access import RegistryUnavailable, probe

    name = settings.registered_model_name
    view = RegistryView(name=name)
    try:
        # Refuses a missing SQLite store instead of letting the client create an empty one.
        probe(settings)
        uri = settings.effective_mlflow_tracking_uri
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        try:
            model = client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return view  # nothing registered yet: an empty registry, not an error
            raise
        versions = client.search_model_versions(f"name = '{name}'")
    except RegistryUnavailable as exc:
        view.error = str(exc)
        return view
    except Exception as exc:  # any store's driver or HTTP error: show it, keep the rest
        view.error = f"{type(exc).__name__}: {str(exc)[:300]}"
        return view
    view.aliases = {alias: str(v) for alias, v in (model.aliases or {}).items()}
    aliases_of: dict[str, list[str]] = {}
    for alias, version in view.aliases.items():
        aliases_of.setdefault(version, []).append(alias)
    ordered = sorted(versions, key=lambda mv: int(mv.version), reverse=True)[:MAX_VERSIONS]
    view.versions = [_version_row(mv, aliases_of) for mv in ordered]
    history = _json((model.tags or {}).get(HISTORY_TAG))
    view.history = [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []
    return view
