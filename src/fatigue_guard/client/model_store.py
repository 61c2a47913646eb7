"""The edge model on the device: verified before use, swapped atomically, old one kept.

Files under ``<data_dir>/models/``: ``<version>-<sha12>.onnx`` and ``current.json`` (the
manifest it was installed from, plus the manifest's ETag). A new file is checked three ways
before anything changes - size and SHA-256 against the manifest, then it must load in ONNX
Runtime and declare the contract's features - and only then does ``current.json`` move to it
(write-to-temp + rename: a crash leaves the old model or the new one, never a mix). A refused
download leaves the running model untouched. At start the installed file is re-hashed, so a
file corrupted on disk is not run either.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from fatigue_guard.contract.alerting import Alerting
from fatigue_guard.contract.features import FEATURE_NAMES, FEATURES_VERSION
from fatigue_guard.edge.manifest import EdgeManifest
from fatigue_guard.files import atomic_write
from fatigue_guard.model.predictors import OnnxPredictor

log = logging.getLogger(__name__)
_KEEP_FILES = 2  # the running model and the one before it


class ModelRefused(ValueError):
    """A downloaded model failed verification; the previous model stays in use."""


@dataclass(frozen=True)
class InstalledModel:
    manifest: EdgeManifest
    predictor: OnnxPredictor
    etag: str | None

    @property
    def version(self) -> str:
        return self.manifest.model_version

    @property
    def threshold(self) -> float:
        return self.manifest.threshold

    @property
    def alerting(self) -> Alerting:
        return self.manifest.alerting


class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._pointer = root / "current.json"
        self.current: InstalledModel | None = self._load_installed()

    def file_bytes(self) -> bytes | None:
        """The installed file (reused when a new manifest names identical bytes)."""
        if self.current is None:
            return None
        return self._file_path(self.current.manifest).read_bytes()

    def remember_etag(self, etag: str | None) -> None:
        """Same model, new manifest ETag (e.g. a re-publish): store it for the next poll."""
        if self.current is not None and etag != self.current.etag:
            self._write_pointer(self.current.manifest, etag)
            self.current = InstalledModel(self.current.manifest, self.current.predictor, etag)

    def install(self, manifest: EdgeManifest, data: bytes, etag: str | None) -> InstalledModel:
        """Verify ``data`` against ``manifest``, write it, switch to it; raises ModelRefused."""
        predictor = verify(manifest, data)
        path = self._file_path(manifest)
        atomic_write(path, data)
        self._write_pointer(manifest, etag)
        self.current = InstalledModel(manifest, predictor, etag)
        self._prune(keep=path)
        return self.current

    # -- internals ------------------------------------------------------------------------

    def _file_path(self, manifest: EdgeManifest) -> Path:
        return self.root / f"{manifest.model_version}-{manifest.sha256[:12]}.onnx"

    def _write_pointer(self, manifest: EdgeManifest, etag: str | None) -> None:
        doc = {"manifest": manifest.model_dump(mode="json"), "etag": etag}
        atomic_write(self._pointer, json.dumps(doc).encode())

    def _load_installed(self) -> InstalledModel | None:
        if not self._pointer.exists():
            return None
        try:
            doc = json.loads(self._pointer.read_text())
            manifest = EdgeManifest.model_validate(doc["manifest"])
            predictor = verify(manifest, self._file_path(manifest).read_bytes())
        except (OSError, ValueError, KeyError) as exc:
            log.error("installed edge model unusable, ignoring it: %s", exc)
            return None
        return InstalledModel(manifest, predictor, doc.get("etag"))

    def _prune(self, keep: Path) -> None:
        files = sorted(self.root.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in [f for f in files if f != keep][_KEEP_FILES - 1 :]:
            old.unlink(missing_ok=True)


def verify(manifest: EdgeManifest, data: bytes) -> OnnxPredictor:
    """The predictor for ``data`` if it is exactly the file ``manifest`` describes."""
    if manifest.features_version != FEATURES_VERSION or tuple(manifest.features) != FEATURE_NAMES:
        raise ModelRefused(
            f"manifest is for features v{manifest.features_version}; this app speaks "
            f"v{FEATURES_VERSION}: update the app"
        )
    if len(data) != manifest.size_bytes:
        raise ModelRefused(f"size {len(data)} != manifest {manifest.size_bytes}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != manifest.sha256:
        raise ModelRefused(f"sha256 {digest[:16]}... != manifest {manifest.sha256[:16]}...")
    try:
        predictor = OnnxPredictor(data)
    except Exception as exc:  # onnxruntime raises its own types for unloadable graphs
        raise ModelRefused(f"file does not load as an ONNX model: {exc}") from exc
    predictor.warm_up()
    return predictor
