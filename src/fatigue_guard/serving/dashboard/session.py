"""Who may read the dashboard: the admin token, or a short-lived session cookie issued for it.

A browser cannot put ``Authorization: Bearer`` on a page navigation, so ``POST /dashboard/session``
exchanges the admin token for a cookie that is

* **signed**: ``v1.<expiry>.<nonce>.<HMAC-SHA256>``, keyed with a key derived from the admin token
  itself, so nothing new has to be configured or stored, and rotating the token ends every
  session at once;
* **short-lived**: it names its own expiry (``SESSION_TTL_S``), checked on every request;
* **HttpOnly** (page scripts cannot read it), **SameSite=Strict** (no other site's page can make
  the browser send it), ``Secure`` whenever the request came over HTTPS.

The cookie opens the dashboard's pages and JSON only (all read-only); every other admin route
still takes the token itself. Without a configured admin token the dashboard does not exist
(404), like the admin routes: it is never open by default.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Literal

from fastapi import Depends, Request
from fastapi.responses import Response

from fatigue_guard.serving.problems import Problem
from fatigue_guard.serving.state import ServingState, get_state

COOKIE_NAME = "fg_dashboard"
SESSION_TTL_S = 30 * 60
_FORMAT = "v1"
_KEY_LABEL = b"fatigue-guard/dashboard-session/v1"

Access = Literal["token", "session"]


def _signing_key(admin_token: str) -> bytes:
    # A derived key, not the token: the MAC never exposes the token, and a cookie is bound
    # to the token that was configured when it was issued.
    return hmac.new(admin_token.encode(), _KEY_LABEL, hashlib.sha256).digest()


def _mac(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue_session(admin_token: str, now: float | None = None) -> tuple[str, int]:
    """A new cookie value and its expiry (Unix seconds)."""
    expires = int(now if now is not None else time.time()) + SESSION_TTL_S
    payload = f"{_FORMAT}.{expires}.{secrets.token_urlsafe(12)}"
    return f"{payload}.{_mac(_signing_key(admin_token), payload)}", expires


def session_expiry(value: str, admin_token: str, now: float | None = None) -> int | None:
    """The expiry of a valid, unexpired cookie value; ``None`` for anything else."""
    parts = value.split(".")
    if len(parts) != 4 or parts[0] != _FORMAT:
        return None
    payload, signature = ".".join(parts[:3]), parts[3]
    if not hmac.compare_digest(signature, _mac(_signing_key(admin_token), payload)):
        return None
    try:
        expires = int(parts[1])
    except ValueError:
        return None
    now = now if now is not None else time.time()
    # The upper bound refuses a cookie minted with a longer lifetime than this code allows.
    if not now < expires <= now + SESSION_TTL_S:
        return None
    return expires


def set_session_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        COOKIE_NAME,
        value,
        max_age=SESSION_TTL_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE_NAME,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def configured_token(state: ServingState) -> str:
    """The admin token; 404 when none is configured (the dashboard does not exist then)."""
    configured = state.settings.admin_token
    if configured is None:
        raise Problem(404, "The dashboard is disabled (no admin token configured).")
    return configured.get_secret_value()


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


def is_admin_token(presented: str, configured: str) -> bool:
    return hmac.compare_digest(presented.encode(), configured.encode())


def _unauthorized(detail: str) -> Problem:
    return Problem(401, detail, kind="unauthorized", headers={"WWW-Authenticate": "Bearer"})


def check_access(request: Request, state: ServingState) -> Access:
    """How the caller may read the dashboard, or the problem to answer.

    A presented bearer credential decides on its own: the admin token passes, anything else
    (a device key included) is 403, whatever cookie comes with it.
    """
    configured = configured_token(state)
    presented = bearer_token(request)
    if presented is not None:
        if is_admin_token(presented, configured):
            return "token"
        raise Problem(403, "Not an admin token.", kind="forbidden")
    cookie = request.cookies.get(COOKIE_NAME)
    if cookie is None:
        raise _unauthorized(
            "The admin token (Authorization: Bearer) or a dashboard session is required; "
            "sign in at /dashboard/login."
        )
    if session_expiry(cookie, configured) is None:
        raise _unauthorized("The dashboard session has expired or is not valid; sign in again.")
    return "session"


async def require_dashboard_access(
    request: Request, state: ServingState = Depends(get_state)
) -> Access:
    """FastAPI dependency for the dashboard's JSON and report routes."""
    return check_access(request, state)
