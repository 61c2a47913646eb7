"""The edge manifest: what the app reads before downloading the ONNX file.

The app compares ``model_version`` with the one it has, downloads ``url`` when it changed, and
refuses the file unless its SHA-256 and size match. ``features`` and ``features_version`` come
from the file's own metadata, not from the caller, so a manifest cannot describe a file built
for another contract; ``kind`` says whether the phone runs the server's forest or a compact one
(with its own ``threshold``). ``alerting`` carries the version's mode to the phone: an advisory
model shows probabilities and never alerts on the device either.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from fatigue_guard.contract.alerting import ALERTING_ON, Alerting
from fatigue_guard.contract.features import FEATURE_NAMES, FEATURES_VERSION
from fatigue_guard.model.onnx_export import read_model_info


class EdgeManifest(BaseModel):
    """``GET /v1/models/edge/manifest`` body; also stored beside the file in the blob store."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_name: str
    model_version: str
    features_version: int
    features: list[str]
    threshold: float = Field(ge=0.0, le=1.0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(gt=0)
    url: str
    created_at: AwareDatetime
    kind: Literal["full", "compact"]
    # A default, so that bundles stored before the field existed still read as alerting ones.
    alerting: Alerting = ALERTING_ON


class ManifestError(ValueError):
    """The ONNX file does not belong to the contract this server speaks."""


def build_manifest(
    onnx_bytes: bytes,
    *,
    model_version: str | int,
    threshold: float,
    url: str,
    kind: Literal["full", "compact"],
    created_at: datetime | None = None,
    alerting: Alerting = ALERTING_ON,
) -> EdgeManifest:
    """Describe ``onnx_bytes``: checksum and size computed here, names read from the file."""
    info = read_model_info(onnx_bytes)
    if info.features_version != FEATURES_VERSION or info.feature_names != FEATURE_NAMES:
        raise ManifestError(
            f"ONNX file is for features v{info.features_version}; this server speaks "
            f"v{FEATURES_VERSION}: re-export the model before publishing it"
        )
    return EdgeManifest(
        model_name=info.model_name,
        model_version=str(model_version),
        features_version=info.features_version,
        features=list(info.feature_names),
        threshold=threshold,
        sha256=hashlib.sha256(onnx_bytes).hexdigest(),
        size_bytes=len(onnx_bytes),
        url=url,
        created_at=created_at or datetime.now(UTC),
        kind=kind,
        alerting=alerting,
    )
