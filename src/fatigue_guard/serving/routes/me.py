"""``GET /v1/me``: which user the presented device key belongs to.

A key is bound to one user when it is issued, but the key string does not say which; a freshly
installed app (or the reference client on a new ``data_dir``) asks here instead of having to be
told the user_id separately and risk a mismatch.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from fatigue_guard.serving.auth import Principal, device_principal

router = APIRouter(prefix="/v1", tags=["devices"])


@router.get("/me", summary="The user the presented device key belongs to")
async def me(principal: Principal = Depends(device_principal)) -> dict[str, str]:
    return {"user_id": principal.user_id}
