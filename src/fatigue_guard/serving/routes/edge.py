"""Edge model distribution: ``GET /v1/models/edge/manifest`` and the ONNX file.

Both answer from the blob store (:mod:`fatigue_guard.edge.bundle`), where the publisher put the
bundle at promotion time, so every API replica hands out the same manifest whatever model it
has loaded at that instant. Both carry an ``ETag`` and honour ``If-None-Match`` with 304: a
phone polling the manifest costs a header exchange, and the file (megabytes over a mobile
network) is downloaded only when its bytes change. Device key required for both: the model is
the product, not a public download.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from fatigue_guard.edge.bundle import (
    BundleIntegrityError,
    current_manifest,
    read_file,
)
from fatigue_guard.serving.auth import Principal, device_principal
from fatigue_guard.serving.problems import Problem
from fatigue_guard.serving.state import ServingState, get_state
from fatigue_guard.storage.blob.stores import BlobNotFound, BlobStore

router = APIRouter(prefix="/v1/models/edge", tags=["edge"])

# Revalidate every time (cheap with the ETag): a promotion must reach phones at their next poll.
_CACHE_CONTROL = "private, no-cache"


def _blobs(state: ServingState) -> BlobStore:
    assert state.storage is not None, "storage is set during the app's start-up"
    return state.storage.blobs


def _store_unavailable() -> Problem:
    return Problem(503, "Model store unavailable; retry later.", headers={"Retry-After": "30"})


def _not_modified(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or etag in tags


def _answer(request: Request, etag: str, body: bytes, media_type: str) -> Response:
    headers = {"ETag": etag, "Cache-Control": _CACHE_CONTROL}
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@router.get("/manifest", summary="Which edge model to run, its checksum and where to get it")
async def edge_manifest(
    request: Request,
    state: ServingState = Depends(get_state),
    _principal: Principal = Depends(device_principal),
) -> Response:
    """The manifest of the published edge model; 304 when the app's copy is current."""
    try:
        manifest = await run_in_threadpool(current_manifest, _blobs(state))
    except Exception:  # local folder (OSError) or Azure (AzureError): the store is down
        raise _store_unavailable() from None
    if manifest is None:
        raise Problem(
            404,
            "No edge model is published yet (operators: `fatigue-guard export-edge`).",
            kind="edge-model-unavailable",
        )
    etag = f'"{manifest.model_version}-{manifest.sha256[:16]}"'
    return _answer(request, etag, manifest.model_dump_json().encode(), "application/json")


@router.get("/files/{model_version}", summary="The ONNX file a manifest points to")
async def edge_file(
    model_version: str,
    request: Request,
    state: ServingState = Depends(get_state),
    _principal: Principal = Depends(device_principal),
) -> Response:
    """ONNX bytes; ``ETag`` is the file's SHA-256, so 304 means "the bytes you hold"."""
    try:
        manifest, data = await run_in_threadpool(read_file, _blobs(state), model_version)
    except (BlobNotFound, ValueError):
        raise Problem(
            404, f"No edge model file for version {model_version!r}.", kind="edge-model-unavailable"
        ) from None
    except BundleIntegrityError:
        # A corrupt blob is never served: the app would refuse it anyway (sha256 check).
        raise Problem(
            503, "Edge model file failed its integrity check.", headers={"Retry-After": "60"}
        ) from None
    except Exception:
        raise _store_unavailable() from None
    return _answer(request, f'"{manifest.sha256}"', data, "application/octet-stream")
