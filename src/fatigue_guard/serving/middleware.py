"""Request id, access log, request metrics and read deadlines, as plain ASGI middleware; and
the HTTP protocol ``fatigue-guard serve`` runs, with a deadline for the request head.

Plain ASGI (not ``BaseHTTPMiddleware``) because it sits on every request of a millisecond
budget. The access log is JSON with the route template, never the path or body: paths and
bodies carry user ids and health data.

A client that stops sending must not hold a connection and a request for ever: uvicorn only
times out idle keep-alive connections. The request head (request line and headers) must arrive
within ``HEADER_READ_TIMEOUT_S`` of the connection or of its first byte, else the connection is
closed (with a 408 if part of a head came). The body must keep coming (no gap longer than
``BODY_IDLE_TIMEOUT_S``) and be complete within ``BODY_TOTAL_TIMEOUT_S`` of the first read,
else the answer is a 408 and the connection is closed. A client that disconnects is normal: it
is counted and logged as status 499 (nginx's "client closed request") like any request, with
no traceback.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from typing import Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from fatigue_guard.serving.metrics import ApiMetrics
from fatigue_guard.serving.problems import Problem, problem_response

access_log = logging.getLogger("fatigue_guard.access")

REQUEST_ID_HEADER = b"x-request-id"

# A phone on a poor link sends a head (well under 1 KB) in a second or two, and a full sync
# (about 120 KB for 200 events) well within the client's own 30 s transfer timeout.
HEADER_READ_TIMEOUT_S = 10.0
BODY_IDLE_TIMEOUT_S = 10.0
BODY_TOTAL_TIMEOUT_S = 60.0

CLIENT_CLOSED_REQUEST = 499


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.body_idle_timeout_s = BODY_IDLE_TIMEOUT_S
        self.body_total_timeout_s = BODY_TOTAL_TIMEOUT_S
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
                headers.extend(_security_headers(headers))
                message = {**message, "headers": headers}
            await send(message)

        declared = _content_length(scope)
        try:
            if declared is not None and declared > self.max_body_bytes:
                response = problem_response(
                    413,
                    f"Request body exceeds {self.max_body_bytes} bytes.",
                    kind="payload-too-large",
                )
                await response(scope, receive, send_with_id)
            else:
                guarded = _guarded_body(
                    receive,
                    self.max_body_bytes,
                    self.body_idle_timeout_s,
                    self.body_total_timeout_s,
                )
                await self.app(scope, guarded, send_with_id)
        except ClientDisconnect:
            # Gone while its body was being read: nobody is left to answer.
            status = CLIENT_CLOSED_REQUEST
        finally:
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


def _guarded_body(receive: Receive, limit: int, idle_s: float, total_s: float) -> Receive:
    """``receive`` with the size limit (streamed bodies too: no or a lying Content-Length) and
    the read deadlines. Once the body is complete, reads pass straight through: a late read
    only waits for a disconnect."""
    seen = 0
    complete = False
    deadline: float | None = None

    async def wrapped() -> Message:
        nonlocal seen, complete, deadline
        if complete:
            return await receive()
        now = time.monotonic()
        if deadline is None:
            deadline = now + total_s
        try:
            async with asyncio.timeout(min(idle_s, deadline - now)):
                message = await receive()
        except TimeoutError:
            raise Problem(
                408,
                "The request body did not arrive in time.",
                # The rest of the body may still come: the connection cannot carry another
                # request after it.
                headers={"Connection": "close"},
            ) from None
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise Problem(413, f"Request body exceeds {limit} bytes.", kind="payload-too-large")
            complete = not message.get("more_body", False)
        else:
            complete = True
        return message

    return wrapped


# Every answer: no MIME sniffing, no referrer, no framing, readable by this origin only. The API
# sends no CORS headers at all, so browsers on other origins cannot read its answers.
_ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
# Answers that are not pages (JSON, problem documents, ONNX files, metrics) run nothing in a
# browser and hold health data: no scripts, no caching. Pages set their own policy.
_NOT_A_PAGE = (
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
)


def _security_headers(present: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    names = {name.lower() for name, _ in present}
    content_type = next((v for n, v in present if n.lower() == b"content-type"), b"")
    extra = [h for h in _ALWAYS if h[0] not in names]
    if not content_type.startswith(b"text/html"):
        extra += [h for h in _NOT_A_PAGE if h[0] not in names]
    return extra


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


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for each request head (see the module)."""

    head_timeout_s = HEADER_READ_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_started = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_started = True
        self._arm_head_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_head_deadline()
        self._head_started = False
        super().on_headers_complete()

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # An earlier request on this connection is still being answered (pipelining): let
            # it finish, then close.
            self.cycle.keep_alive = False
            return
        if self._head_started:
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
        self.transport.close()
