"""The feature contract: the one place that says what a feature vector is.

The API schema, the simulator, training, drift monitoring, ONNX export and the edge manifest all
read names, order, units and ranges from here. Changing anything in :data:`FEATURES` is a contract
change and must bump :data:`FEATURES_VERSION`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

FEATURES_VERSION: Final[int] = 1


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One feature: its name (unit included), range and whether a device must send it."""

    name: str
    description: str
    unit: str
    minimum: float
    maximum: float
    required: bool
    integer: bool = False
    # local_hour lives on [0, 24): 24.0 is the next day's 0.0, so it is excluded.
    maximum_exclusive: bool = False

    @property
    def range_text(self) -> str:
        upper = "<" if self.maximum_exclusive else "<="
        return f"{self.minimum:g} <= {self.name} {upper} {self.maximum:g}"

    def contains(self, value: float) -> bool:
        if value < self.minimum:
            return False
        return value < self.maximum if self.maximum_exclusive else value <= self.maximum


FEATURES: Final[tuple[FeatureSpec, ...]] = (
    FeatureSpec("sleep_duration_h", "last main sleep", "hours", 0, 16, required=True),
    FeatureSpec("sleep_efficiency", "asleep / in bed", "ratio", 0, 1, required=True),
    FeatureSpec("resting_hr_bpm", "overnight resting heart rate", "beats/min", 25, 150, True),
    FeatureSpec("hrv_rmssd_ms", "overnight RMSSD", "ms", 1, 300, required=False),
    FeatureSpec("hours_awake", "hours since last wake", "hours", 0, 72, required=True),
    FeatureSpec(
        "local_hour",
        "local clock hour, fractional",
        "hours",
        0,
        24,
        required=True,
        maximum_exclusive=True,
    ),
    FeatureSpec("sleep_latency_min", "minutes to fall asleep", "min", 0, 240, required=False),
    FeatureSpec("waso_min", "wake after sleep onset", "min", 0, 600, required=False),
    FeatureSpec("awakenings", "awakenings in the sleep", "count", 0, 100, False, integer=True),
    FeatureSpec("deep_sleep_pct", "deep sleep share of sleep", "%", 0, 100, required=False),
    FeatureSpec("rem_sleep_pct", "REM share of sleep", "%", 0, 100, required=False),
    FeatureSpec("sleep_debt_7d_h", "hours short of personal need, 7 days", "hours", -30, 60, False),
    FeatureSpec(
        "sleep_midpoint_shift_h", "sleep midpoint vs personal 14-day mean", "hours", -12, 12, False
    ),
    FeatureSpec(
        "resting_hr_delta_bpm",
        "resting HR vs personal 14-day baseline",
        "beats/min",
        -50,
        80,
        False,
    ),
    FeatureSpec("hrv_rmssd_ratio", "RMSSD / personal 14-day baseline", "ratio", 0.05, 10, False),
    FeatureSpec("hr_last_hour_bpm", "mean heart rate, last hour", "beats/min", 25, 230, False),
    FeatureSpec("steps_24h", "steps, last 24 h", "count", 0, 100_000, False, integer=True),
    FeatureSpec(
        "recent_fatigue_rate_14d",
        "share of the user's own fatigue reports that were positive, 14 days before measured_at",
        "ratio",
        0,
        1,
        required=False,
    ),
)

FEATURE_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES)
REQUIRED_FEATURES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES if f.required)
OPTIONAL_FEATURES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES if not f.required)
INTEGER_FEATURES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES if f.integer)
FEATURES_BY_NAME: Final[dict[str, FeatureSpec]] = {f.name: f for f in FEATURES}

# Cross-field rule: deep and REM are shares of the same sleep, so they cannot add past 100 %.
SLEEP_STAGE_FIELDS: Final[tuple[str, str]] = ("deep_sleep_pct", "rem_sleep_pct")
SLEEP_STAGE_MAX_TOTAL: Final[float] = 100.0
SLEEP_STAGE_RULE: Final[str] = "deep_sleep_pct + rem_sleep_pct <= 100"

# Columns of a contract-format table besides the features (training data, simulator output,
# scored output). ``fatigue_event`` is the label; the segment columns are optional.
ID_COLUMNS: Final[tuple[str, ...]] = ("event_id", "user_id", "measured_at")
SEGMENT_COLUMNS: Final[tuple[str, ...]] = ("device_model", "platform", "app_version")
LABEL_COLUMN: Final[str] = "fatigue_event"
