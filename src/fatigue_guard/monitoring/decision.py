"""The run's decision: one false-discovery control over every test, then the effect sizes.

A run holds a few hundred tests: per feature the pooled rows, the missing and out-of-range
shares, the per-person location and two tails; the four physiology means; each feature's value,
missing and out-of-range share in each segment value; the score and the alert rate. Judged every
few hours, a 1 % error per test would be a false alarm in every run. Benjamini-Hochberg at
``monitor_fdr`` across all of them keeps the chance that a stationary window flags anything at or
under ``monitor_fdr`` (under the global null BH controls the family-wise error), while a real
shift, which moves several tests at once (a feature, its derived features, its segment), raises
BH's threshold with each discovery instead of paying Bonferroni's full price.

Significance only says a difference is not noise; a signal is flagged when its effect also
passes its threshold (PSI / Wasserstein, the missing or out-of-range tolerance, the clinical
tolerance of a person-level or segment shift) and the window has ``monitor_min_samples`` rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from fatigue_guard.config import Settings
from fatigue_guard.model.profile import ReferenceProfile
from fatigue_guard.model.stats import benjamini_hochberg
from fatigue_guard.monitoring.persons import PersonShift, TailShift
from fatigue_guard.monitoring.segments import (
    MISSING,
    OUT_OF_RANGE,
    VALUE,
    SegmentTest,
    explain_away,
    named,
)
from fatigue_guard.monitoring.signals import (
    DistributionDrift,
    PhysiologyShift,
    PredictionDrift,
    large,
)
from fatigue_guard.monitoring.window import Window


class _Family:
    """p-values with what to do with each verdict, decided together."""

    def __init__(self) -> None:
        self.pvalues: list[float] = []
        self.actions: list[Callable[[bool], None]] = []

    def add(self, p_value: float, action: Callable[[bool], None]) -> None:
        self.pvalues.append(p_value)
        self.actions.append(action)

    def decide(self, rate: float) -> float:
        """Apply every verdict; returns BH's critical value (0 when nothing was rejected)."""
        rejected = benjamini_hochberg(np.asarray(self.pvalues), rate)
        for verdict, action in zip(rejected, self.actions, strict=True):
            action(bool(verdict))
        return rate * int(rejected.sum()) / max(len(self.pvalues), 1)


def decide(
    features: list[DistributionDrift],
    prediction: PredictionDrift,
    physiology: list[PhysiologyShift],
    persons: Mapping[str, PersonShift],
    segment_tests: list[SegmentTest],
    reference: ReferenceProfile,
    window: Window,
    s: Settings,
    bad: Mapping[str, np.ndarray],
) -> int:
    """Set every flag of the run; returns the number of tests in the family."""
    enough = window.rows >= s.monitor_min_samples
    family = _Family()
    for f in features:

        def pooled(ok: bool, f: DistributionDrift = f) -> None:
            f.drifted = enough and ok and large(f, s)

        def missing(ok: bool, f: DistributionDrift = f) -> None:
            change = abs(f.missing_current - f.missing_reference)
            f.missing_drifted = enough and ok and change >= s.monitor_missing_tolerance

        def out_of_range(ok: bool, f: DistributionDrift = f) -> None:
            change = abs(f.out_of_range_current - f.out_of_range_reference)
            f.range_drifted = enough and ok and change >= s.monitor_missing_tolerance

        family.add(f.p_value, pooled)
        family.add(f.missing_p_value, missing)
        # Only where some value is out of range on either side: elsewhere the test cannot
        # reject, and counting it would only thin the others' share of the error rate.
        if f.out_of_range_reference or f.out_of_range_current:
            family.add(f.out_of_range_p_value, out_of_range)

    if prediction.scores is not None:
        sc = prediction.scores

        def score(ok: bool) -> None:
            sc.drifted = enough and ok and large(sc, s)

        family.add(sc.p_value, score)

    def alert_rate(ok: bool) -> None:
        change = prediction.relative_change
        prediction.alert_rate_drifted = bool(
            enough and ok and change is not None and abs(change) >= s.monitor_alert_rate_tolerance
        )

    family.add(prediction.alert_rate_p_value, alert_rate)

    for ph in physiology:
        if ph.difference is None:
            continue

        def physiology_mean(ok: bool, ph: PhysiologyShift = ph) -> None:
            ph.flagged = enough and ok and ph.n_current >= s.monitor_min_samples

        family.add(ph.p_value, physiology_mean)

    for person in persons.values():
        if person.difference is not None:

            def location(ok: bool, p: PersonShift = person) -> None:
                p.location_flagged = bool(enough and ok and abs(p.difference or 0.0) >= p.tolerance)

            family.add(person.p_value, location)
        for tail in person.tails:

            def tail_flag(ok: bool, t: TailShift = tail, p: PersonShift = person) -> None:
                t.flagged = enough and ok and t.large(p.tolerance, s.monitor_person_share_excess)

            family.add(tail.p_value, tail_flag)

    for test in segment_tests:

        def segment(ok: bool, t: SegmentTest = test) -> None:
            t.named = enough and ok and t.large(s)

        family.add(test.p_value, segment)

    cutoff = family.decide(s.monitor_fdr)
    explain_away(segment_tests, reference, window, s, bad, cutoff)
    _attribute(features, persons, segment_tests)
    return len(family.pvalues)


def _attribute(
    features: list[DistributionDrift],
    persons: Mapping[str, PersonShift],
    segment_tests: list[SegmentTest],
) -> None:
    """Fold the person-level and segment verdicts into each feature's flags and scope."""
    for f in features:
        f.segments = named(segment_tests, f.name, VALUE)
        f.missing_segments = named(segment_tests, f.name, MISSING)
        f.range_segments = named(segment_tests, f.name, OUT_OF_RANGE)
        person = persons.get(f.name)
        by_people = person is not None and person.flagged
        if f.drifted:
            f.detected_in = "population"
        elif by_people:
            f.detected_in = "persons"
        elif f.segments:
            f.detected_in = "segment"
        f.drifted = f.drifted or by_people or bool(f.segments)
        if f.drifted:
            f.scope = "segment" if f.segments else "population"
        f.missing_drifted = f.missing_drifted or bool(f.missing_segments)
        f.range_drifted = f.range_drifted or bool(f.range_segments)
