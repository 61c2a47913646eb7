"""Person-level drift: the distribution of per-person means, not of pooled rows.

A person's rows repeat the person: a shift confined to a third of the people (an older group
joining) moves the pooled rows' distribution little, yet puts many people outside the range that
the reference's people occupied. So for every feature, people are the unit:

- **location**: the mean of the window's per-person means against the reference's (Welch t on
  people: each person counts once, whatever their number of rows);
- **tails**: the share of people whose window mean lies below (above) the reference's central
  range of per-person *weekly* means, against the reference's own share. The reference share is
  itself an estimate from some tens of people, so the count of people outside is judged against
  the beta-binomial that this uncertainty implies, not against a binomial with the share taken
  as exact (which would turn a lucky reference into false alarms).

A test's p-value joins the run's Benjamini-Hochberg family; it is flagged only when the effect is
also one a clinician would call meaningful: the mean of person means moved by at least the
feature's tolerance, or the share outside grew by ``monitor_person_share_excess`` *and* the
people there sit at least the tolerance beyond the range's edge (the window's quantile at the
reference's tail share against the edge).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from fatigue_guard.config import Settings
from fatigue_guard.contract.features import FEATURE_NAMES
from fatigue_guard.model.profile import ReferenceProfile
from fatigue_guard.model.stats import beta_binomial_sf, welch_pvalue
from fatigue_guard.monitoring.window import Window

_NS_PER_DAY = 86_400 * 10**9

# The smallest change in a person's weekly mean that a clinician would act on, per feature and in
# its unit. They set the effect sizes of the person-level and segment tests (never the p-values).
PERSON_TOLERANCES: Final[dict[str, float]] = {
    # Thirty minutes of habitual sleep: the size of effect sleep-extension and restriction
    # studies treat as relevant to daytime function.
    "sleep_duration_h": 0.5,
    # Five points of efficiency: about the night-to-night noise of a consumer tracker, and a
    # sixth of the distance between good (>= 85 %) and clearly disturbed sleep.
    "sleep_efficiency": 0.05,
    # A sustained rise of 3 bpm over a person's usual is the conventional early flag for
    # illness or overreaching in athlete monitoring.
    "resting_hr_bpm": 3.0,
    # About a tenth of a typical adult's overnight RMSSD; weekly-mean changes smaller than half the
    # night-to-night variation (10-20 %) are not treated as meaningful.
    "hrv_rmssd_ms": 5.0,
    # An hour of the day: the size of a time-zone or daylight-saving change in app use.
    "hours_awake": 1.0,
    "local_hour": 1.0,
    # Ten minutes of sleep onset latency: a third of the 30-minute insomnia criterion.
    "sleep_latency_min": 10.0,
    "waso_min": 10.0,
    "awakenings": 2.0,
    # Three points of a sleep-stage share: beyond the staging noise of wrist devices.
    "deep_sleep_pct": 3.0,
    "rem_sleep_pct": 3.0,
    # An hour and a half of debt a week: about 13 minutes a night.
    "sleep_debt_7d_h": 1.5,
    # Half an hour of midpoint shift: social jet lag of this size is associated with sleepiness.
    "sleep_midpoint_shift_h": 0.5,
    # Deviations from the person's own baseline: the same 3 bpm and a tenth of the baseline.
    "resting_hr_delta_bpm": 3.0,
    "hrv_rmssd_ratio": 0.1,
    "hr_last_hour_bpm": 5.0,
    # A thousand steps a day: about ten minutes of walking, the change activity trials target.
    "steps_24h": 1000.0,
    # Ten percentage points of the person's own fatigue reports.
    "recent_fatigue_rate_14d": 0.1,
}


def person_tolerances(settings: Settings) -> dict[str, float]:
    """The tolerances above, with ``monitor_person_tolerances`` overriding any of them."""
    unknown = set(settings.monitor_person_tolerances) - set(FEATURE_NAMES)
    if unknown:
        raise ValueError(f"monitor_person_tolerances: unknown features {sorted(unknown)}")
    return {**PERSON_TOLERANCES, **settings.monitor_person_tolerances}


def _r(value: float | None, digits: int = 5) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


@dataclass
class TailShift:
    """People beyond one edge of the reference's per-person range."""

    side: str  # "below" | "above"
    edge: float
    reference_share: float
    current_share: float
    people: int  # window people beyond the edge
    # The window people's quantile at the reference's tail share: where the edge would sit if the
    # window were the reference. Its distance from the edge is how far the tail moved.
    current_quantile: float
    p_value: float
    flagged: bool = False

    @property
    def excess(self) -> float:
        return self.current_share - self.reference_share

    @property
    def quantile_shift(self) -> float:
        return self.current_quantile - self.edge

    def large(self, tolerance: float, excess: float) -> bool:
        outward = -self.quantile_shift if self.side == "below" else self.quantile_shift
        return self.excess >= excess and outward >= tolerance

    def as_dict(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "edge": _r(self.edge),
            "reference_share": _r(self.reference_share),
            "current_share": _r(self.current_share),
            "people": self.people,
            "current_quantile": _r(self.current_quantile),
            "quantile_shift": _r(self.quantile_shift),
            "p_value": _r(self.p_value, 8),
            "flagged": self.flagged,
        }


@dataclass
class PersonShift:
    """One feature's per-person means in the window against the reference's people."""

    name: str
    tolerance: float
    people_reference: int
    people_current: int
    reference_mean: float | None = None
    current_mean: float | None = None
    p_value: float = 1.0
    tails: list[TailShift] = field(default_factory=list)
    location_flagged: bool = False
    note: str | None = None  # why a test was not run

    @property
    def difference(self) -> float | None:
        if self.reference_mean is None or self.current_mean is None:
            return None
        return self.current_mean - self.reference_mean

    @property
    def flagged(self) -> bool:
        return self.location_flagged or any(t.flagged for t in self.tails)

    def describe(self) -> str:
        """What fired, for the decision's reasons."""
        parts = []
        for t in self.tails:
            if t.flagged:
                where = "below" if t.side == "below" else "above"
                parts.append(
                    f"{t.current_share:.0%} of people {where} the reference's per-person range "
                    f"({t.edge:.4g}; reference {t.reference_share:.0%}), the window's "
                    f"{'lower' if t.side == 'below' else 'upper'} tail at {t.current_quantile:.4g}"
                )
        if self.location_flagged and self.difference is not None:
            parts.append(
                f"mean of per-person means {self.current_mean:.4g} vs {self.reference_mean:.4g}"
            )
        return (
            f"people: {self.name} {'; '.join(parts)} (tolerance {self.tolerance:g}, "
            f"{self.people_current} people)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tolerance": self.tolerance,
            "people_reference": self.people_reference,
            "people_current": self.people_current,
            "reference_mean": _r(self.reference_mean),
            "current_mean": _r(self.current_mean),
            "difference": _r(self.difference),
            "p_value": _r(self.p_value, 8),
            "location_flagged": self.location_flagged,
            "tails": [t.as_dict() for t in self.tails],
            "flagged": self.flagged,
            "note": self.note,
        }


def _window_days(window: Window) -> float | None:
    if window.measured_ns is None or not window.rows:
        return None
    return float(window.measured_ns.max() - window.measured_ns.min()) / _NS_PER_DAY


def person_shifts(
    reference: ReferenceProfile, window: Window, settings: Settings
) -> list[PersonShift]:
    """Location and tail statistics of every feature's per-person means (undecided)."""
    if not reference.has_persons or window.user_codes is None:
        return []
    tolerances = person_tolerances(settings)
    span = _window_days(window)
    out = []
    for name in FEATURE_NAMES:
        ref = reference.persons(name)
        persons = window.summary(name).persons
        if ref is None or persons is None:
            continue
        means = persons.means(int(ref.get("min_values", reference.person_min_values)))
        shift = PersonShift(name, tolerances[name], int(ref["k"]), len(means))
        if shift.people_current < settings.monitor_min_persons or shift.people_reference < 2:
            shift.note = "too few people"
            out.append(shift)
            continue
        if ref.get("mean") is not None and ref.get("var") is not None:
            shift.reference_mean = float(ref["mean"])
            shift.current_mean = float(means.mean())
            shift.p_value, _ = welch_pvalue(
                shift.current_mean,
                float(means.var(ddof=1)),
                len(means),
                shift.reference_mean,
                float(ref["var"]),
                float(ref["k"]),
            )
        block = ref.get("block_days")
        if "range" not in ref or block is None:
            shift.note = "no reference range"
        elif span is None or not 0.5 * block <= span <= 1.5 * block:
            # Per-person means over a window much shorter or longer than the reference weeks
            # are more or less noisy than those weeks: their tails would not compare.
            shift.note = f"window of {span} days; the reference range is of {block:g}-day means"
        else:
            lo, hi = ref["range"]
            for side, edge, outside in (("below", lo, means < lo), ("above", hi, means > hi)):
                share, n_eff = float(ref[side]), float(ref[f"{side}_n_eff"])
                if share <= 0:
                    continue  # the edge is the reference's extreme: location and rows judge it
                count = int(outside.sum())
                level = share if side == "below" else 1 - share
                shift.tails.append(
                    TailShift(
                        side=side,
                        edge=float(edge),
                        reference_share=share,
                        current_share=count / len(means),
                        people=count,
                        current_quantile=float(np.quantile(means, level)),
                        # Jeffreys prior on the reference share: Beta(x + 1/2, n - x + 1/2).
                        p_value=beta_binomial_sf(
                            count, len(means), share * n_eff + 0.5, (1 - share) * n_eff + 0.5
                        ),
                    )
                )
        out.append(shift)
    return out
