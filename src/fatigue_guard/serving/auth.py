"""Who is calling: device keys (bound to one user), admin tokens, and rate limits.

A device key may only write and read its own user's data. Verified keys are cached for a short
time so that the request path does not pay a SQL round trip per request; a revoked key stops
working within ``key_cache_ttl_s``.

Keys that fail cost a SQL lookup, so they are limited per client address, before the lookup
(``ADDRESS_FAILURE_*``), and remembered for ``REFUSED_KEY_TTL_S``. A refused key gets one answer
whatever was wrong with it (unknown key id, wrong secret, revoked, malformed): the same status
and body, no sooner than ``REFUSAL_FLOOR_S`` after its check began. The floor hides what the
lookup's duration says (a key id that exists returns a row to compare against, an unknown one
returns nothing), and costs the server nothing: the request waits on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Request
from sqlalchemy import exc as sa_exc
from starlette.concurrency import run_in_threadpool

from fatigue_guard.config import Settings
from fatigue_guard.serving.problems import Problem
from fatigue_guard.serving.rate_limit import TokenBuckets, address_bucket
from fatigue_guard.serving.state import ServingState, get_state
from fatigue_guard.storage.keys import parse_key

KeyCheck = Callable[[str], str | None]  # presented key -> user_id, None if not valid

# Failed key checks per client address: a burst, then one a second. A phone whose key was revoked
# fails a few times before it stops; a guesser is held to a trickle of lookups.
ADDRESS_FAILURE_BURST = 30
ADDRESS_FAILURE_RATE_PER_S = 1.0
# A refused key is answered from memory this long: a client retrying a bad key costs no lookup.
REFUSED_KEY_TTL_S = 10.0
# Above a key lookup's duration on a busy server (about 1 ms here, 3.5 ms on a remote
# PostgreSQL), yet nothing a client with a wrong key would notice.
REFUSAL_FLOOR_S = 0.025
# Entries either cache holds at most; past it, it starts again empty.
MAX_CACHED_KEYS = 100_000


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    user_id: str


def _unauthorized(detail: str) -> Problem:
    return Problem(401, detail, kind="unauthorized", headers={"WWW-Authenticate": "Bearer"})


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.headers.get("x-api-key")


class KeyVerifier:
    """Verifies device keys against the SQL store; remembers good keys and refused ones."""

    def __init__(self, check: KeyCheck, ttl_s: float, refused_ttl_s: float) -> None:
        self._check = check
        self._ttl_s = ttl_s
        self._refused_ttl_s = refused_ttl_s
        self._cache: dict[str, tuple[float, Principal]] = {}
        # Refused keys by digest: a client chooses what it presents, memory holds 32 bytes.
        self._refused: dict[bytes, float] = {}

    def cached(self, key: str) -> Principal | None:
        hit = self._cache.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        return None

    def refused(self, key: str) -> bool:
        expires = self._refused.get(_digest(key))
        return expires is not None and expires > time.monotonic()

    def verify(self, key: str) -> Principal | None:
        parsed = parse_key(key)
        user_id = None if parsed is None else self._check(key)
        if parsed is None or user_id is None:
            if len(self._refused) >= MAX_CACHED_KEYS:
                self._refused.clear()
            self._refused[_digest(key)] = time.monotonic() + self._refused_ttl_s
            return None
        principal = Principal(key_id=parsed[0], user_id=user_id)
        if len(self._cache) >= MAX_CACHED_KEYS:
            self._cache.clear()
        self._cache[key] = (time.monotonic() + self._ttl_s, principal)
        return principal


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


async def device_principal(request: Request, state: ServingState = Depends(get_state)) -> Principal:
    """FastAPI dependency: the caller's device key, verified and rate-limited."""
    auth = state.auth
    key = presented_key(request)
    if not key:
        raise _unauthorized("A device API key is required (Authorization: Bearer <key>).")
    principal = auth.verifier.cached(key)
    if principal is None:
        principal = await _check_key(request, auth, key)
    wait = auth.limiter.acquire(principal.key_id)
    if wait > 0:
        raise _rate_limited("Rate limit exceeded for this key.", wait)
    return principal


async def _check_key(request: Request, auth: AuthServices, key: str) -> Principal:
    """A key not in the cache: refused by address first, then from memory, then by lookup."""
    started = time.monotonic()
    address = address_bucket(request.client.host if request.client else None)
    wait = auth.failures.wait(address)
    if wait > 0:
        raise _rate_limited("Too many invalid API keys from this address.", wait)
    principal = None
    if not auth.verifier.refused(key):
        try:
            principal = await run_in_threadpool(auth.verifier.verify, key)
        except sa_exc.SQLAlchemyError:
            # Cannot tell a good key from a bad one right now; nothing is answered, so nothing
            # is lost: the client retries.
            raise Problem(
                503, "Key store unavailable; retry shortly.", headers={"Retry-After": "2"}
            ) from None
    if principal is None:
        auth.failures.charge(address, 1)
        await asyncio.sleep(started + auth.refusal_floor_s - time.monotonic())
        raise _unauthorized("The API key is not valid.")
    return principal


def charge_items(state: ServingState, principal: Principal, items: int) -> None:
    """Charge a request that carries ``items`` units of work (sync events) for all but the one
    token :func:`device_principal` took; the key goes into debt if it must."""
    assert state.auth is not None
    state.auth.limiter.charge(principal.key_id, items - 1)


def _rate_limited(detail: str, wait_s: float) -> Problem:
    return Problem(
        429, detail, kind="rate-limited", headers={"Retry-After": str(max(1, round(wait_s + 0.5)))}
    )


def ensure_own_user(principal: Principal, user_id: str) -> None:
    # Same answer whether or not the other user exists: a key learns nothing about other users.
    if not hmac.compare_digest(principal.user_id.encode(), user_id.encode()):
        raise Problem(403, "This key may not access that user's data.", kind="forbidden")


async def require_admin(request: Request, state: ServingState = Depends(get_state)) -> None:
    """FastAPI dependency for ``/v1/admin`` routes; disabled entirely without a configured token."""
    configured = state.settings.admin_token
    if configured is None:
        raise Problem(404, "Admin routes are disabled (no admin token configured).")
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if not token:
        raise _unauthorized("An admin token is required.")
    if not hmac.compare_digest(token.encode(), configured.get_secret_value().encode()):
        # A device key presented here lands in this branch too: admin and device are separate.
        raise Problem(403, "Not an admin token.", kind="forbidden")


@dataclass
class AuthServices:
    verifier: KeyVerifier
    limiter: TokenBuckets  # per key id: one token a request, one a sync event
    failures: TokenBuckets  # per client address: one token a refused key
    refusal_floor_s: float = REFUSAL_FLOOR_S


def build_auth(settings: Settings, check: KeyCheck) -> AuthServices:
    return AuthServices(
        verifier=KeyVerifier(
            check, settings.key_cache_ttl_s, min(REFUSED_KEY_TTL_S, settings.key_cache_ttl_s)
        ),
        limiter=TokenBuckets(settings.rate_limit_per_s, settings.rate_limit_burst),
        failures=TokenBuckets(ADDRESS_FAILURE_RATE_PER_S, ADDRESS_FAILURE_BURST),
    )
