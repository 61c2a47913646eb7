"""Pydantic models of the HTTP contract (DESIGN §3), generated from the feature contract.

The feature model is built from :data:`~fatigue_guard.contract.features.FEATURES` so that a range
change in the contract is a range change in the API, with nothing to keep in sync by hand.
Validation is strict where silently coercing would hide a client bug: numbers must be JSON
numbers (not strings), NaN/Infinity are refused, counts must be whole, unknown features are
refused, and timestamps must carry a UTC offset.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    create_model,
    field_validator,
)

from fatigue_guard.contract.features import (
    FEATURES,
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


def _as_utc(value: datetime) -> datetime:
    # Near year 1 or 9999 a valid local time can have no UTC instant; refusing it here keeps
    # every caller's utc() from raising, and names the field instead of failing the request.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("has no UTC equivalent: the date is out of range") from None


Timestamp = Annotated[AwareDatetime, AfterValidator(_as_utc)]


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
    __doc__="One feature vector, contract v1 (DESIGN §2).",
    **{spec.name: _field_for(spec) for spec in FEATURES},
)


class ClientInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    app_version: str | None = Field(default=None, max_length=64)
    platform: str | None = Field(default=None, max_length=32)
    device_model: str | None = Field(default=None, max_length=64)


class PredictionRequest(BaseModel):
    """``POST /v1/predictions``: one feature vector to score."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: UUID = Field(description="Client-made idempotency key.")
    user_id: UserId
    measured_at: Timestamp = Field(description="RFC 3339 with offset.")
    features: Features  # type: ignore[valid-type]
    client: ClientInfo | None = None


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
    threshold: float
    model: ModelRef
    served_by: Literal["server", "edge"] = "server"


class FeedbackRequest(BaseModel):
    """``POST /v1/feedback``: the ground truth live precision/recall are computed from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: UUID
    fatigue_event: StrictBool
    source: Literal["self_report", "incident", "wearable"]
    observed_at: Timestamp


class EdgePrediction(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fatigue_probability: Annotated[StrictFloat | StrictInt, Field(ge=0, le=1, allow_inf_nan=False)]
    alert: StrictBool
    model_version: str = Field(min_length=1, max_length=64)


class SyncEvent(BaseModel):
    """One prediction the device made offline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: UUID
    user_id: UserId
    measured_at: Timestamp
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
