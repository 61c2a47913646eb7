"""Helpers shared by the JSON routes: parsing against the contract, answering with orjson."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from fatigue_guard.contract.errors import validation_errors
from fatigue_guard.contract.features import FEATURE_NAMES
from fatigue_guard.serving.problems import (
    PROBLEM_MEDIA_TYPE,
    contract_violation,
    unsupported_media_type,
)
from fatigue_guard.serving.state import ServingState

ModelT = TypeVar("ModelT", bound=BaseModel)


def json_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI request body for routes that parse the raw body themselves (see parse_body)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        },
        "responses": {
            "415": {
                "description": "The body is not declared as JSON (Content-Type).",
                "content": {PROBLEM_MEDIA_TYPE: {}},
            }
        },
    }


async def parse_body(request: Request, model: type[ModelT], state: ServingState) -> ModelT:
    """Validate the raw body with Pydantic's JSON parser (one pass, no dict detour).

    Contract violations become 422 problem+json naming each field, and are counted by field for
    the data-quality signal of the monitor. A body not declared as JSON is a 415, before it is
    read: a form or text/plain post that happens to parse must not pass for a client that
    speaks the contract.
    """
    if not is_json_media_type(request.headers.get("content-type")):
        raise unsupported_media_type()
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = validation_errors(exc)
        for error in errors:
            state.metrics.rejected.labels(_metric_field(error["field"])).inc()
        raise contract_violation(errors) from None


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` or ``application/<anything>+json``, with any parameters."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    kind, _, subtype = media.partition("/")
    if kind != "application":
        return False
    return subtype == "json" or (subtype.endswith("+json") and len(subtype) > len("+json"))


# Label values must come from a closed set: clients choose unknown field names freely.
_KNOWN_FIELDS = frozenset(
    {f"features.{name}" for name in FEATURE_NAMES}
    | {"body", "event_id", "user_id", "measured_at", "features", "client", "items", "events"}
    | {"fatigue_event", "source", "observed_at"}
)


def _metric_field(field: str) -> str:
    return field if field in _KNOWN_FIELDS else "other"


def json_response(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")
