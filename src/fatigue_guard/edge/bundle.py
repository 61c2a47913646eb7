"""The edge bundle in the blob store: one ONNX file + its manifest per model version, and a
pointer naming the version phones should run.

Layout (beside ``features/``, under the same features version, so a contract bump starts a new
tree instead of serving old-contract files to new apps)::

    edge/v{features_version}/{model_version}/model.onnx
    edge/v{features_version}/{model_version}/manifest.json
    edge/v{features_version}/current.json          {"model_version": "..."}

Publishing writes the file, then the manifest, then the pointer: every ``put`` is atomic, so a
reader that follows the pointer always finds a complete manifest whose file exists. Rollback is
a pointer move (the older bundle is still there). The pointer, not each API replica's loaded
model, decides what phones get, so every replica answers the same manifest during a rollout.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Final

from fatigue_guard.contract.features import FEATURES_VERSION
from fatigue_guard.edge.manifest import EdgeManifest
from fatigue_guard.storage.blob.stores import BlobNotFound, BlobStore

EDGE_PREFIX: Final[str] = f"edge/v{FEATURES_VERSION}"
POINTER_KEY: Final[str] = f"{EDGE_PREFIX}/current.json"
FILE_ROUTE: Final[str] = "/v1/models/edge/files"


def file_url(model_version: str) -> str:
    """The manifest's ``url``: relative to the API base, so every host name works."""
    return f"{FILE_ROUTE}/{model_version}"


def model_key(model_version: str) -> str:
    return f"{EDGE_PREFIX}/{_checked(model_version)}/model.onnx"


def manifest_key(model_version: str) -> str:
    return f"{EDGE_PREFIX}/{_checked(model_version)}/manifest.json"


def _checked(model_version: str) -> str:
    # Versions come from the registry ("3") or a URL path: never let one escape its folder.
    if not model_version or not model_version.replace("-", "").replace(".", "").isalnum():
        raise ValueError(f"invalid model version {model_version!r}")
    return model_version


class BundleIntegrityError(RuntimeError):
    """A stored file does not match its manifest (size or SHA-256): never serve it."""


@dataclass(frozen=True)
class EdgeBundle:
    manifest: EdgeManifest
    onnx_bytes: bytes


def write_bundle(blobs: BlobStore, bundle: EdgeBundle, *, make_current: bool = True) -> None:
    """Store ``bundle`` (file, manifest, then pointer); refuses bytes that break the manifest."""
    manifest = bundle.manifest
    _verify(manifest, bundle.onnx_bytes)
    blobs.put(model_key(manifest.model_version), bundle.onnx_bytes)
    blobs.put(manifest_key(manifest.model_version), manifest.model_dump_json().encode())
    if make_current:
        set_current(blobs, manifest.model_version)


def set_current(blobs: BlobStore, model_version: str) -> None:
    """Point phones at an already stored version (rollback); raises if it was never stored."""
    read_manifest(blobs, model_version)  # BlobNotFound if absent: never point at nothing
    blobs.put(POINTER_KEY, json.dumps({"model_version": model_version}).encode())


def current_version(blobs: BlobStore) -> str | None:
    try:
        return str(json.loads(blobs.get(POINTER_KEY))["model_version"])
    except BlobNotFound:
        return None


def read_manifest(blobs: BlobStore, model_version: str) -> EdgeManifest:
    return EdgeManifest.model_validate_json(blobs.get(manifest_key(model_version)))


def current_manifest(blobs: BlobStore) -> EdgeManifest | None:
    version = current_version(blobs)
    return None if version is None else read_manifest(blobs, version)


def has_bundle(blobs: BlobStore, model_version: str) -> bool:
    try:
        read_manifest(blobs, model_version)
    except BlobNotFound:
        return False
    return True


def read_file(blobs: BlobStore, model_version: str) -> tuple[EdgeManifest, bytes]:
    """The stored file with its manifest, checked against it (a corrupt blob is not served)."""
    manifest = read_manifest(blobs, model_version)
    data = blobs.get(model_key(model_version))
    _verify(manifest, data)
    return manifest, data


def _verify(manifest: EdgeManifest, data: bytes) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != manifest.size_bytes or digest != manifest.sha256:
        raise BundleIntegrityError(
            f"edge file for v{manifest.model_version}: {len(data)} bytes sha256 {digest[:12]}, "
            f"manifest says {manifest.size_bytes} bytes sha256 {manifest.sha256[:12]}"
        )
