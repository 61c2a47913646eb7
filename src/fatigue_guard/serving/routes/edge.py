"""Edge model distribution: ``GET /v1/models/edge/manifest`` and the ONNX file (DESIGN §3)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/models/edge", tags=["edge"])
