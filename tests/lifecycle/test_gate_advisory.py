"""The gate's advisory rules, on real registered versions of the session's trained model.

The same logged forest is registered three times under a model name of its own, once alerting
and twice as advisory (the tags ``train --advisory`` writes), so each rule is judged on real
MLflow versions, their pipelines and a real labelled hold-out, without training anything.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from fatigue_guard.config import Settings
from fatigue_guard.contract.alerting import ADVISORY_THRESHOLD
from fatigue_guard.lifecycle.gate import evaluate_gate
from fatigue_guard.registry import RegisteredModel, configure_mlflow, get_model_version
from fatigue_guard.registry.alerting import alerting_tags
from fatigue_guard.registry.models import TAG_THRESHOLD
from tests.fixtures.models import TrainedRegistry

MODEL = "fatigue-gate-advisory"


@pytest.fixture(scope="module")
def versions(
    tmp_path_factory: pytest.TempPathFactory, trained_registry: TrainedRegistry
) -> tuple[Settings, RegisteredModel, RegisteredModel, RegisteredModel]:
    """``(settings, alerting, advisory, second advisory)`` versions of one forest."""
    settings = trained_registry.settings(
        tmp_path_factory.mktemp("gate-advisory"), registered_model_name=MODEL
    )
    client = configure_mlflow(settings)
    trained = client.get_model_version("fatigue-rf", trained_registry.version)
    advisory = {
        **trained.tags,
        TAG_THRESHOLD: repr(ADVISORY_THRESHOLD),
        **alerting_tags("no threshold met the floor", {"best_precision": 0.6}),
    }
    out = []
    for tags in (trained.tags, advisory, advisory):
        mv = mlflow.register_model(trained.source, MODEL, tags=tags)
        out.append(get_model_version(settings, mv.version))
    assert [v.alerting for v in out] == ["on", "advisory", "advisory"]
    return settings, out[0], out[1], out[2]


def test_an_advisory_candidate_never_replaces_an_alerting_production(
    versions: tuple[Settings, RegisteredModel, RegisteredModel, RegisteredModel],
    trained_registry: TrainedRegistry,
) -> None:
    settings, alerting, advisory, _ = versions
    gate = evaluate_gate(settings, advisory, alerting, holdout=trained_registry.live)
    assert not gate.passed
    assert "is advisory" in gate.reason and "never replaces" in gate.reason


def test_an_alerting_candidate_that_meets_the_floor_replaces_an_advisory_production(
    versions: tuple[Settings, RegisteredModel, RegisteredModel, RegisteredModel],
    trained_registry: TrainedRegistry,
) -> None:
    settings, alerting, advisory, _ = versions
    gate = evaluate_gate(settings, alerting, advisory, holdout=trained_registry.live)
    assert gate.passed, gate.reason
    assert "was advisory: alerts turn on" in gate.reason
    # The advisory version alerts on nothing: no recall for the candidate to beat.
    assert gate.metrics["production_recall"] == 0.0
    assert gate.metrics["candidate_precision"] >= settings.precision_floor - 0.02


def test_an_alerting_candidate_below_the_floor_does_not_replace_an_advisory_production(
    versions: tuple[Settings, RegisteredModel, RegisteredModel, RegisteredModel],
    trained_registry: TrainedRegistry,
    tmp_path: Path,
) -> None:
    _, alerting, advisory, _ = versions
    strict = trained_registry.settings(tmp_path, registered_model_name=MODEL, precision_floor=0.99)
    gate = evaluate_gate(strict, alerting, advisory, holdout=trained_registry.live)
    assert not gate.passed and "below floor 0.99" in gate.reason


def test_advisory_over_advisory_is_judged_on_pr_auc(
    versions: tuple[Settings, RegisteredModel, RegisteredModel, RegisteredModel],
    trained_registry: TrainedRegistry,
) -> None:
    settings, _, advisory, second = versions
    gate = evaluate_gate(settings, second, advisory, holdout=trained_registry.live)
    # The same forest ranks the hold-out exactly as well: not lower, so it may replace it.
    assert gate.passed, gate.reason
    assert gate.reason.startswith("advisory over advisory: PR-AUC")
    assert gate.metrics["candidate_pr_auc"] == gate.metrics["production_pr_auc"]
