"""Threshold selection: maximise recall subject to precision >= floor, with a margin."""

from __future__ import annotations

import numpy as np
import pytest

from fatigue_guard.model import threshold
from fatigue_guard.model.threshold import (
    NoThresholdMeetsFloor,
    ScoredView,
    operating_curve,
    select_threshold,
    select_threshold_for_views,
    wilson_lower_bound,
)


def scored(labels: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels from a string like '11011', scores strictly decreasing (first = highest)."""
    y = np.array([c == "1" for c in labels])
    return y, np.linspace(0.99, 0.01, len(y))


def test_picks_highest_recall_meeting_the_floor_without_margin() -> None:
    # Ranked: + + + + - + + - - + - - ; 7 positives. Precision down the list:
    # top 7 = 6/7 (0.857), top 8 = 6/8 (0.75), top 10 = 7/10 (0.70 < floor).
    # Highest recall at precision >= 0.75 is 6/7; top 7 and top 8 share it, and top 7 has
    # fewer false alarms, so the answer is the 7th score.
    y, s = scored("111101100100")
    choice = select_threshold(y, s, 0.75, confidence_z=0.0)
    assert choice.threshold == pytest.approx(s[6])
    assert choice.precision == pytest.approx(6 / 7)
    assert choice.recall == pytest.approx(6 / 7)
    assert choice.alerts == 7
    assert choice.alert_rate == pytest.approx(7 / 12)


def test_ties_are_alerted_together() -> None:
    y = np.array([1, 1, 0, 1, 0, 0], dtype=bool)
    s = np.array([0.9, 0.8, 0.8, 0.5, 0.5, 0.1])
    # At t=0.8: 2 TP + 1 FP (tie included) = 0.667; at t=0.9: 1/1. Floor 0.6 -> 0.8 is chosen,
    # 0.5 gives 3/5 = 0.6 which also meets it and has higher recall.
    choice = select_threshold(y, s, 0.6, confidence_z=0.0)
    assert choice.threshold == pytest.approx(0.5)
    assert choice.recall == pytest.approx(1.0)
    curve = operating_curve(y, s)
    assert list(curve.thresholds) == [0.9, 0.8, 0.5, 0.1]
    assert list(curve.alerts) == [1, 3, 5, 6]


def test_margin_makes_the_threshold_more_conservative() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(4000) < 0.15
    s = np.where(y, rng.beta(4, 2, 4000), rng.beta(2, 4, 4000))
    plain = select_threshold(y, s, 0.75, confidence_z=0.0)
    safe = select_threshold(y, s, 0.75, confidence_z=1.645)
    assert safe.threshold > plain.threshold
    assert safe.recall < plain.recall
    assert safe.precision_lower_bound >= 0.75
    assert plain.precision >= 0.75


def test_no_threshold_meets_floor_reports_attainable_points() -> None:
    rng = np.random.default_rng(1)
    y = rng.random(2000) < 0.1
    s = rng.random(2000)  # pure noise: precision ~ prevalence everywhere
    with pytest.raises(NoThresholdMeetsFloor) as info:
        select_threshold(y, s, 0.75)
    exc = info.value
    assert exc.floor == 0.75
    assert 0.0 < exc.attainable["best_precision"] < 0.75
    assert {"recall_at_precision_0.6", "recall_at_precision_0.5"} <= set(exc.attainable)
    assert "no decision threshold reaches precision >= 0.75" in str(exc)


def test_no_positives_is_a_clear_failure() -> None:
    with pytest.raises(NoThresholdMeetsFloor):
        select_threshold(np.zeros(10, bool), np.linspace(0, 1, 10), 0.5)


def test_wilson_lower_bound_known_values() -> None:
    assert wilson_lower_bound(np.array([8]), np.array([10]), 0.0)[0] == pytest.approx(0.8)
    # Textbook value: 8/10 at z=1.96 -> 0.4902.
    assert wilson_lower_bound(np.array([8]), np.array([10]), 1.96)[0] == pytest.approx(
        0.4902, abs=1e-4
    )
    assert wilson_lower_bound(np.array([0]), np.array([0]), 1.96)[0] == 0.0


def _brute_design_effect(y: np.ndarray, s: np.ndarray, users: np.ndarray, t: float) -> float:
    alert = s >= t
    a_u = np.array([alert[users == u].sum() for u in np.unique(users)], dtype=float)
    t_u = np.array([(alert & y)[users == u].sum() for u in np.unique(users)], dtype=float)
    big_a = a_u.sum()
    p = t_u.sum() / big_a
    k = (a_u > 0).sum()
    if k < 2:
        return big_a
    var_c = k / (k - 1) * ((t_u - p * a_u) ** 2).sum() / big_a**2
    var_b = p * (1 - p) / big_a
    return max(1.0, var_c / var_b) if var_b > 0 else 1.0


def test_design_effect_matches_the_cluster_robust_formula() -> None:
    rng = np.random.default_rng(4)
    users = rng.integers(0, 25, 600)
    person = rng.uniform(0.1, 0.9, 25)[users]  # each person's own hit rate: clustered labels
    y = rng.random(600) < person
    s = np.round(rng.random(600), 2)  # ties on purpose
    curve, deff = threshold._curve(y, s, users)
    for i in range(0, len(curve.thresholds), 7):
        expected = _brute_design_effect(y, s, users, curve.thresholds[i])
        assert deff[i] == pytest.approx(expected, rel=1e-9), curve.thresholds[i]


def test_clustered_alerts_widen_the_margin_and_independent_ones_do_not() -> None:
    rng = np.random.default_rng(7)
    n, people = 20_000, 200
    users = rng.integers(0, people, n)
    # Scores carry signal, and how right an alert is depends strongly on the person.
    skill = rng.normal(0, 1.5, people)[users]
    y = rng.random(n) < 1 / (1 + np.exp(-(skill - 1.5)))
    s = 1 / (1 + np.exp(-(skill + rng.normal(0, 1, n))))
    plain = select_threshold(y, s, 0.75)
    clustered = select_threshold(y, s, 0.75, groups=users)
    assert clustered.design_effect > 1.5
    assert clustered.threshold >= plain.threshold
    assert clustered.recall <= plain.recall
    # One row per person: nothing clusters, so the choice is the plain one.
    alone = select_threshold(y, s, 0.75, groups=np.arange(n))
    assert alone.design_effect == pytest.approx(1.0, abs=0.1)
    assert alone.threshold == pytest.approx(plain.threshold, abs=0.02)


def test_views_choice_is_the_strictest_view_and_one_view_is_select_threshold() -> None:
    rng = np.random.default_rng(11)
    users = rng.integers(0, 150, 8000)
    y = rng.random(8000) < 0.2
    s = np.where(y, rng.beta(5, 2, 8000), rng.beta(2, 5, 8000))
    alone = select_threshold(y, s, 0.75, groups=users)
    one = select_threshold_for_views([ScoredView("oof_user", y, s, users)], 0.75)
    assert one.choice == alone and one.binding == "oof_user"
    # A later period where the same scores are right less often: the threshold must rise.
    later_y = rng.random(3000) < 0.12
    later_s = np.where(later_y, rng.beta(5, 2, 3000), rng.beta(2, 5, 3000))
    later = ScoredView("forward_time", later_y, later_s, rng.integers(0, 150, 3000))
    both = select_threshold_for_views([ScoredView("oof_user", y, s, users), later], 0.75)
    assert both.choice.threshold > alone.threshold
    assert both.binding == "forward_time"
    assert both.choice == select_threshold(later.y_true, later.scores, 0.75, groups=later.groups)
    for point in both.by_view.values():
        assert point.threshold == both.choice.threshold
    assert both.by_view["oof_user"].recall < alone.recall
    assert both.by_view["oof_user"].precision > alone.precision


def test_views_choice_refuses_when_one_view_never_reaches_the_floor() -> None:
    y, s = scored("1111101111" * 20)
    noise = ScoredView("forward_time", np.arange(200) % 2 == 0, np.linspace(0.99, 0.01, 200))
    with pytest.raises(NoThresholdMeetsFloor) as caught:
        select_threshold_for_views([ScoredView("oof_user", y, s), noise], 0.75)
    assert caught.value.attainable["best_precision"] < 0.75
