"""Pydantic models of the HTTP contract, generated from the feature contract.

The feature model is built from :data:`~fatigue_guard.contract.features.FEATURES` so that a range
change in the contract is a range change in the API, with nothing to keep in sync by hand.
Validation is strict where silently coercing would hide a client bug: numbers must be JSON
numbers (not strings), NaN/Infinity are refused, counts must be whole, unknown features are
refused, and timestamps must be ISO 8601 strings with a UTC offset inside a plausible window.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    create_model,
    field_validator,
)

from fatigue_guard.contract.alerting import Alerting
from fatigue_guard.contract.features import (
    FEATURES,
    FEATURES_VERSION,
    SLEEP_STAGE_FIELDS,
    SLEEP_STAGE_MAX_TOTAL,
    SLEEP_STAGE_RULE,
    FeatureSpec,
)

MAX_BATCH_ITEMS = 1000

UserId = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")
]


def _field_for(spec: FeatureSpec) -> tuple[Any, Any]:
    # Lax int accepts 3 and 3.0 (some mobile JSON encoders write whole doubles that way) but not
    # 3.5; strings and booleans never reach it (see _FeaturesBase._plain_number).
    number = int if spec.integer else float
    bounds: dict[str, float] = {"ge": spec.minimum}
    bounds["lt" if spec.maximum_exclusive else "le"] = spec.maximum
    annotated = Annotated[
        number, Field(allow_inf_nan=False, description=spec.description, **bounds)
    ]
    if spec.required:
        return annotated, ...
    return annotated | None, None


# Wearables did not log anything before 2000, so an earlier stamp is a client bug (a year 20,
# an epoch mix-up). Ahead of the server, a day covers a phone whose clock runs fast or whose
# time zone is set wrong, yet keeps a far-future stamp out of partitions no window reads yet.
EARLIEST_TIMESTAMP: Final[datetime] = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CLOCK_SKEW: Final[timedelta] = timedelta(days=1)
TIMESTAMP_RULE: Final[str] = (
    "An ISO 8601 (RFC 3339) date-time string with an explicit UTC offset ('Z' or '+HH:MM'), "
    "e.g. 2026-03-02T13:15:00+01:00, from 2000-01-01T00:00:00Z to 1 day after the server's "
    "clock (allowance for a device clock running ahead). Numbers are refused."
)
_WINDOW_TEXT = "must be from 2000-01-01T00:00:00Z to 1 day after the server's current time"
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")


def _iso_string(value: Any) -> Any:
    # Pydantic would read a number (or a string of digits) as seconds or milliseconds since
    # 1970: a plausible-looking date would hide the client's bug.
    if isinstance(value, datetime):
        return value  # Python callers, such as the reference client, hand over datetimes
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError(
            "must be an ISO 8601 date-time string with a UTC offset, e.g. 2026-03-02T13:15:00+01:00"
        )
    return value


def _in_window(value: datetime) -> datetime:
    # Near year 1 or 9999 a valid local time can have no UTC instant; refusing it here keeps
    # every caller's utc() from raising, and names the field instead of failing the request.
    try:
        instant = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(_WINDOW_TEXT) from None
    if not EARLIEST_TIMESTAMP <= instant <= datetime.now(UTC) + MAX_CLOCK_SKEW:
        raise ValueError(_WINDOW_TEXT)
    return instant


Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_string), AfterValidator(_in_window)]


class _FeaturesBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before", check_fields=False)
    @classmethod
    def _plain_number(cls, value: Any) -> Any:
        # Python's and Pydantic's JSON parsers accept the NaN/Infinity literals; the contract does
        # not, and the range check would otherwise report a confusing "must be >= 0".
        if isinstance(value, (bool, str)):
            raise ValueError("must be a JSON number, not a string or boolean")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number (NaN and Infinity are not allowed)")
        return value

    @field_validator(SLEEP_STAGE_FIELDS[1], mode="after", check_fields=False)
    @classmethod
    def _sleep_stages_fit_in_sleep(cls, value: float | None, info: ValidationInfo) -> float | None:
        # Validated after the first stage field (declaration order), so its value is in info.data.
        other = info.data.get(SLEEP_STAGE_FIELDS[0])
        if value is not None and other is not None and other + value > SLEEP_STAGE_MAX_TOTAL:
            raise ValueError(f"{SLEEP_STAGE_RULE} violated ({other:g} + {value:g})")
        return value

    def as_row(self) -> list[float]:
        """Values in contract order, ``nan`` for a missing optional feature (model input)."""
        return [math.nan if (v := getattr(self, f.name)) is None else float(v) for f in FEATURES]


Features: type[_FeaturesBase] = create_model(  # type: ignore[call-overload]
    "Features",
    __base__=_FeaturesBase,
    __doc__=f"One feature vector, contract v{FEATURES_VERSION}.",
    **{spec.name: _field_for(spec) for spec in FEATURES},
)


class ClientInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    app_version: str | None = Field(default=None, max_length=64)
    platform: str | None = Field(default=None, max_length=32)
    device_model: str | None = Field(default=None, max_length=64)


_RawNumber = StrictFloat | StrictInt


class RawMeasurements(BaseModel):
    """Measurements that are not model features but that personal baselines are computed from
    (see ``contract.baselines``). Both optional: without them the API leaves the baselines that
    need them empty, unless the device sends those features itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sleep_midpoint_h: Annotated[_RawNumber, Field(ge=-12, le=24, allow_inf_nan=False)] | None = (
        Field(
            default=None,
            description="Midpoint of the last main sleep, in hours after midnight of the local "
            "day it ended (a 23:00-07:00 night: 3.0; a midpoint before midnight is negative).",
        )
    )
    sleep_goal_h: Annotated[_RawNumber, Field(ge=3, le=14, allow_inf_nan=False)] | None = Field(
        default=None,
        description="The person's own nightly sleep goal, in hours; without it their usual "
        "sleep over the 28 days before stands in.",
    )


class PredictionRequest(BaseModel):
    """``POST /v1/predictions``: one feature vector to score."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: UUID = Field(description="Client-made idempotency key.")
    user_id: UserId
    measured_at: Timestamp = Field(description=f"When the features were measured. {TIMESTAMP_RULE}")
    features: Features  # type: ignore[valid-type]
    client: ClientInfo | None = None
    raw: RawMeasurements | None = Field(
        default=None,
        description="Raw measurements the server computes personal baselines from; see "
        "docs/http-api.md.",
    )


class BatchPredictionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class ModelRef(BaseModel):
    name: str
    version: str


class PredictionResponse(BaseModel):
    event_id: UUID
    fatigue_probability: float
    alert: bool
    alerting: Alerting = Field(
        description="on: alert is true when fatigue_probability >= threshold. advisory: the "
        "model could not meet the precision floor in training, so it serves probabilities "
        "only and alert is always false until a model that meets the floor is promoted.",
    )
    threshold: float
    model: ModelRef
    served_by: Literal["server", "edge"] = "server"


class FeedbackRequest(BaseModel):
    """``POST /v1/feedback``: the ground truth live precision/recall are computed from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: UUID
    fatigue_event: StrictBool
    source: Literal["self_report", "incident", "wearable"]
    observed_at: Timestamp = Field(
        description=f"When the fatigue event was (or was not) observed. {TIMESTAMP_RULE}"
    )


class EdgePrediction(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fatigue_probability: Annotated[StrictFloat | StrictInt, Field(ge=0, le=1, allow_inf_nan=False)]
    alert: StrictBool
    model_version: str = Field(
        min_length=1,
        max_length=64,
        description="The edge model's version as its manifest names it, with no surrounding "
        "whitespace.",
    )

    @field_validator("model_version")
    @classmethod
    def _exact_version(cls, value: str) -> str:
        # " 1" would find version 1's threshold yet be stored as another version, splitting
        # that version's edge predictions in every per-version count.
        if value != value.strip():
            raise ValueError("must not start or end with whitespace")
        return value


class SyncEvent(BaseModel):
    """One prediction the device made offline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: UUID
    user_id: UserId
    measured_at: Timestamp = Field(
        description=f"When the features were measured on the device. {TIMESTAMP_RULE}"
    )
    features: Features  # type: ignore[valid-type]
    prediction: EdgePrediction
    client: ClientInfo | None = None


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class FieldError(BaseModel):
    field: str
    message: str


def utc(dt: datetime) -> datetime:
    """Normalise an aware timestamp to UTC (storage and partitioning use UTC dates)."""
    return dt.astimezone(UTC)
