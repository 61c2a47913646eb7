"""Request id, access log and request metrics, as plain ASGI middleware.

Plain ASGI (not ``BaseHTTPMiddleware``) because it sits on every request of a millisecond
budget. The access log is JSON with the route template, never the path or body: paths and
bodies carry user ids and health data.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fatigue_guard.serving.metrics import ApiMetrics
from fatigue_guard.serving.problems import Problem, problem_response

access_log = logging.getLogger("fatigue_guard.access")

REQUEST_ID_HEADER = b"x-request-id"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        # Request ids only need to be unique, not secret: a random per-process prefix plus a
        # counter, instead of uuid4() per request (an os.urandom syscall, slow on a busy host).
        self._id_prefix = uuid.uuid4().hex[:16]
        self._ids = itertools.count(1)

    def _next_request_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):016x}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = _incoming_request_id(scope) or self._next_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                # Server-side time so far (W3C Server-Timing): lets a client tell the server's
                # share of a slow answer from its own network and connection set-up.
                elapsed_ms = (time.perf_counter() - start) * 1000
                headers.append((b"server-timing", f"app;dur={elapsed_ms:.2f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            response = problem_response(
                413,
                f"Request body exceeds {self.max_body_bytes} bytes.",
                kind="payload-too-large",
            )
            await response(scope, receive, send_with_id)
        else:
            await self.app(scope, _limited(receive, self.max_body_bytes), send_with_id)
        route = getattr(scope.get("route"), "path", "unmatched")
        elapsed = time.perf_counter() - start
        self.metrics.requests.labels(route, str(status)).inc()
        self.metrics.latency.labels(route).observe(elapsed)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                orjson.dumps(
                    {
                        "request_id": request_id,
                        "method": scope["method"],
                        "route": route,
                        "status": status,
                        "ms": round(elapsed * 1000, 3),
                    }
                ).decode()
            )


def _limited(receive: Receive, limit: int) -> Receive:
    """Enforce the limit on streamed bodies too (no or lying Content-Length)."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise Problem(413, f"Request body exceeds {limit} bytes.", kind="payload-too-large")
        return message

    return wrapped


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER:
            text = value.decode("latin-1")[:64]
            return text if text.replace("-", "").isalnum() else None
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def request_id_of(scope: dict[str, Any]) -> str | None:
    return scope.get("state", {}).get("request_id")
