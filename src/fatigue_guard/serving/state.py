"""What a running API process holds, and the FastAPI dependencies that hand it to routes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from fatigue_guard.config import Settings
from fatigue_guard.serving.metrics import ApiMetrics
from fatigue_guard.serving.model_slot import ModelSlot


@dataclass
class ServingState:
    settings: Settings
    models: ModelSlot = field(default_factory=ModelSlot)
    metrics: ApiMetrics = field(default_factory=ApiMetrics)
    recorder: Any = None  # fatigue_guard.storage.recorder.PredictionRecorder
    extras: dict[str, Any] = field(default_factory=dict)


def get_state(request: Request) -> ServingState:
    return request.app.state.serving
