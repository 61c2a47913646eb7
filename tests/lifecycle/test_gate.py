"""Validation gate: reject a worse candidate with a reason, promote a better one, roll back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fatigue_guard.contract.features import LABEL_COLUMN
from fatigue_guard.lifecycle.bus import MessageBus
from fatigue_guard.lifecycle.gate import (
    DeploymentError,
    DeploymentEvent,
    promote,
    rollback,
)
from fatigue_guard.lifecycle.registration import train_and_register
from fatigue_guard.registry import (
    PRODUCTION,
    STAGING,
    configure_mlflow,
    get_model_by_alias,
    list_versions,
)
from tests.training.conftest import fast_settings


def test_gate_rejects_worse_promotes_better_and_rollback_restores(
    tmp_path: Path, small_cohort: pd.DataFrame
) -> None:
    # A floor of 0.5 keeps the good models comfortably above it on this small cohort; the
    # shuffled-label model's precision is the prevalence (~0.15), far below.
    settings = fast_settings(tmp_path, precision_floor=0.5)
    events: list[DeploymentEvent] = []
    bus = MessageBus()
    bus.subscribe(DeploymentEvent, events.append)
    v1 = train_and_register(settings, small_cohort, seed=0, bus=bus)
    assert v1.alias == PRODUCTION and events[-1].action == "initial"

    # Worse candidate: trained on shuffled labels. A floor of 0.1 (below the prevalence) lets
    # it through training, so it reaches the registry as staging.
    shuffled = small_cohort.copy()
    shuffled[LABEL_COLUMN] = np.random.default_rng(1).permutation(shuffled[LABEL_COLUMN])
    v2 = train_and_register(settings, shuffled, seed=0, precision_floor=0.1)
    assert v2.alias == STAGING

    outcome = promote(settings, None, actor="test", reason="try the shuffled one")
    assert not outcome.promoted
    assert "precision" in outcome.gate.reason and "below floor" in outcome.gate.reason
    assert get_model_by_alias(settings).version == v1.registered.version
    client = configure_mlflow(settings)
    tags = client.get_model_version("fatigue-rf", v2.registered.version).tags
    assert tags["gate.result"] == "rejected"
    assert "below floor" in tags["gate.reason"]

    v3 = train_and_register(settings, small_cohort, seed=1)
    assert v3.alias == STAGING
    outcome = promote(settings, None, actor="test", reason="retrained", bus=bus)
    assert outcome.promoted, outcome.gate.reason
    assert outcome.gate.metrics["rows"] > 0
    assert get_model_by_alias(settings).version == v3.registered.version
    assert get_model_by_alias(settings, STAGING) is None  # staging was consumed
    assert events[-1].action == "promote"
    assert events[-1].previous_version == v1.registered.version
    assert events[-1].actor == "test" and events[-1].reason == "retrained"

    event = rollback(settings, actor="oncall", reason="alert storm", bus=bus)
    assert event.version == v1.registered.version
    assert event.previous_version == v3.registered.version
    assert get_model_by_alias(settings).version == v1.registered.version
    assert events[-1].action == "rollback"

    rows = {r.version: r for r in list_versions(settings)}
    assert rows[v1.registered.version].aliases == (PRODUCTION,)
    assert rows[v2.registered.version].tags["gate.result"] == "rejected"
    assert rows[v3.registered.version].tags["gate.result"] == "passed"
    history = client.get_registered_model("fatigue-rf").tags["deployment.history"]
    assert [e in history for e in ('"initial"', '"promote"', '"rollback"')] == [True] * 3

    with pytest.raises(DeploymentError, match="staging"):
        promote(settings, None, actor="test", reason="nothing staged")
