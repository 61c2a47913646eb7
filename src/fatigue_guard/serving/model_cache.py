"""Local disk copy of the last production version this host served.

When the registry is unreachable at start-up, a process serves from here instead of not at all.
The cache holds only what serving needs: the ONNX file, the version's identity, threshold and
alerting (an advisory version must stay silent when it starts from here too),
its golden vectors (so a cached model passes the same check as a fresh one) and the ONNX
file's SHA-256 (so a truncated or altered file is refused, never served).

Layout under ``settings.model_cache_dir``::

    manifest.json            # the version to start from; written last, atomically
    <name>-v<version>.onnx   # model files; the manifest's and one predecessor are kept

Several worker processes of one host share the folder: every write goes to a temporary file
that is fsync'd and renamed over the target, so a reader sees the old file or the new one,
never half of one, and two workers writing the same version write identical bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fatigue_guard.contract.alerting import ALERTING_ON, Alerting, parse_alerting
from fatigue_guard.files import atomic_write

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
KEEP_FILES = 2


@dataclass(frozen=True)
class CachedModel:
    name: str
    version: str
    threshold: float
    features_version: int
    sha256: str
    onnx: bytes
    golden: tuple[np.ndarray, np.ndarray] | None
    cached_at: str
    alerting: Alerting = ALERTING_ON


class CacheInvalid(ValueError):
    """The cache exists but cannot be trusted (bad manifest, missing file, checksum mismatch)."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ModelCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def store(
        self,
        *,
        name: str,
        version: str,
        threshold: float,
        features_version: int,
        onnx: bytes,
        golden: tuple[np.ndarray, np.ndarray] | None,
        cached_at: str,
        alerting: Alerting = ALERTING_ON,
    ) -> None:
        """Make ``version`` the one to start from."""
        self.root.mkdir(parents=True, exist_ok=True)
        model_file = f"{name}-v{version}.onnx"
        atomic_write(self.root / model_file, onnx)
        manifest = {
            "name": name,
            "version": version,
            "threshold": threshold,
            "alerting": alerting,
            "features_version": features_version,
            "file": model_file,
            "sha256": sha256_hex(onnx),
            "size_bytes": len(onnx),
            "cached_at": cached_at,
            "golden": None
            if golden is None
            else {
                # JSON has no NaN: nulls stand for missing features, as in the API.
                "rows": [[None if np.isnan(v) else float(v) for v in row] for row in golden[0]],
                "probabilities": [float(p) for p in golden[1]],
            },
        }
        atomic_write(self.root / MANIFEST, json.dumps(manifest).encode())
        self._prune(keep={model_file})

    def load(self) -> CachedModel | None:
        """The cached version, ``None`` if nothing was cached; :class:`CacheInvalid` if corrupt."""
        path = self.root / MANIFEST
        if not path.is_file():
            return None
        try:
            doc = json.loads(path.read_bytes())
            onnx = (self.root / doc["file"]).read_bytes()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CacheInvalid(f"unreadable model cache at {self.root}: {exc}") from None
        if sha256_hex(onnx) != doc.get("sha256"):
            raise CacheInvalid(f"checksum mismatch for {doc['file']} in {self.root}")
        golden_doc = doc.get("golden")
        golden = None
        if golden_doc is not None:
            rows = [[np.nan if v is None else v for v in row] for row in golden_doc["rows"]]
            golden = (
                np.asarray(rows, dtype=np.float32),
                np.asarray(golden_doc["probabilities"], dtype=np.float64),
            )
        return CachedModel(
            name=str(doc["name"]),
            version=str(doc["version"]),
            threshold=float(doc["threshold"]),
            features_version=int(doc["features_version"]),
            sha256=str(doc["sha256"]),
            onnx=onnx,
            golden=golden,
            cached_at=str(doc.get("cached_at", "")),
            alerting=parse_alerting(doc.get("alerting")),
        )

    def _prune(self, keep: set[str]) -> None:
        """Keep the manifest's file and the newest other one; another worker may be mid-store."""
        dated = []
        for path in self.root.glob("*.onnx"):
            try:
                dated.append((path.stat().st_mtime, path))
            except OSError:  # pruned by another worker meanwhile
                continue
        files = [path for _, path in sorted(dated, reverse=True)]
        extra = [p for p in files if p.name not in keep][: KEEP_FILES - 1]
        for path in files:
            if path.name not in keep and path not in extra:
                try:
                    path.unlink()
                except OSError as exc:  # a concurrent prune got there first
                    log.debug("model cache prune: %s", exc)
