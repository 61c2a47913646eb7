"""The manifest describes exactly the bytes it ships with."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import onnx
import pytest
from pydantic import ValidationError

from fatigue_guard.contract.features import FEATURE_NAMES, FEATURES_VERSION
from fatigue_guard.edge.manifest import EdgeManifest, ManifestError, build_manifest
from fatigue_guard.model.onnx_export import export_onnx

URL = "/v1/models/edge/fatigue-rf/7.onnx"


@pytest.fixture(scope="module")
def onnx_bytes(uniform_pipeline) -> bytes:
    return export_onnx(uniform_pipeline)


def test_checksum_size_and_features_match_the_bytes(onnx_bytes: bytes) -> None:
    created = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    manifest = build_manifest(
        onnx_bytes, model_version=7, threshold=0.42, url=URL, kind="compact", created_at=created
    )
    assert manifest.sha256 == hashlib.sha256(onnx_bytes).hexdigest()
    assert manifest.size_bytes == len(onnx_bytes)
    assert manifest.features == list(FEATURE_NAMES)
    assert manifest.features_version == FEATURES_VERSION
    assert manifest.model_name == "fatigue-rf"
    assert manifest.model_version == "7"
    assert manifest.kind == "compact"
    assert manifest.alerting == "on"
    assert set(manifest.model_dump()) == {
        "model_name", "model_version", "features_version", "features", "threshold",
        "sha256", "size_bytes", "url", "created_at", "kind", "alerting",
    }  # fmt: skip
    again = EdgeManifest.model_validate_json(manifest.model_dump_json())
    assert again == manifest


def test_an_advisory_manifest_says_so_and_an_older_one_reads_as_alerting(
    onnx_bytes: bytes,
) -> None:
    advisory = build_manifest(
        onnx_bytes, model_version=2, threshold=1.0, url=URL, kind="full", alerting="advisory"
    )
    assert EdgeManifest.model_validate_json(advisory.model_dump_json()).alerting == "advisory"
    stored_before = advisory.model_dump(mode="json")
    del stored_before["alerting"]
    assert EdgeManifest.model_validate(stored_before).alerting == "on"


def test_a_changed_byte_changes_the_checksum(onnx_bytes: bytes) -> None:
    a = build_manifest(onnx_bytes, model_version=1, threshold=0.5, url=URL, kind="full")
    model = onnx.load_model_from_string(onnx_bytes)
    model.doc_string += " "
    b = build_manifest(
        model.SerializeToString(), model_version=1, threshold=0.5, url=URL, kind="full"
    )
    assert a.sha256 != b.sha256


def test_refuses_a_file_exported_for_another_contract(onnx_bytes: bytes) -> None:
    model = onnx.load_model_from_string(onnx_bytes)
    for prop in model.metadata_props:
        if prop.key == "features_version":
            prop.value = str(FEATURES_VERSION + 1)
    with pytest.raises(ManifestError, match="re-export"):
        build_manifest(
            model.SerializeToString(), model_version=1, threshold=0.5, url=URL, kind="full"
        )


def test_rejects_invalid_fields(onnx_bytes: bytes) -> None:
    good = build_manifest(onnx_bytes, model_version=1, threshold=0.5, url=URL, kind="full")
    for bad in ({"sha256": "xyz"}, {"threshold": 1.5}, {"kind": "tiny"}, {"size_bytes": 0}):
        with pytest.raises(ValidationError):
            EdgeManifest.model_validate({**good.model_dump(), **bad})
