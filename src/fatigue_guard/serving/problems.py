"""RFC 9457 problem details: every error the API returns has this one shape.

Clients code against ``errors: [{field, message}]``, so validation failures from any input path
(single prediction, batch item, sync event, feedback) name the offending field the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from fatigue_guard.contract.errors import field_errors
from fatigue_guard.storage.recording.recorder import RecordNotDurable

PROBLEM_MEDIA_TYPE = "application/problem+json"
# How long a phone waits before it sends again a prediction that could not be recorded.
NOT_RECORDED_RETRY_AFTER_S = 5
PROBLEM_TYPE_BASE = "https://fatigue-guard.dev/problems/"

log = logging.getLogger(__name__)


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem+json document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        errors: Sequence[dict[str, str]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind or HTTPStatus(status).phrase.lower().replace(" ", "-")
        self.errors = list(errors)
        self.headers = headers or {}


def contract_violation(errors: Sequence[dict[str, str]]) -> Problem:
    fields = ", ".join(e["field"] for e in errors[:5])
    return Problem(
        422,
        f"The request does not satisfy the contract: {fields}.",
        kind="validation-error",
        errors=errors,
    )


def unsupported_media_type() -> Problem:
    return Problem(
        415,
        "The body must be JSON: send Content-Type: application/json.",
        kind="unsupported-media-type",
        headers={"Accept-Post": "application/json"},
    )


def problem_response(
    status: int,
    detail: str,
    *,
    kind: str,
    errors: Sequence[dict[str, str]] = (),
    instance: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + kind,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = list(errors)
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


# RFC 3986 characters a path may hold unescaped: unreserved, sub-delims, ":", "@" and "/".
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def instance_of(request: Request) -> str:
    """The request path as a URI reference (``instance``), whatever bytes the client sent.

    Starlette hands over the percent-decoded path; echoed as is, a path parameter with spaces,
    non-ASCII letters or control characters would make ``instance`` an invalid URI reference.
    """
    return quote(request.url.path, safe=_PATH_SAFE)


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error path (ours, FastAPI's, Starlette's, unexpected) to problem+json."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(
            exc.status,
            exc.detail,
            kind=exc.kind,
            errors=exc.errors,
            instance=instance_of(request),
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        problem = contract_violation(field_errors(exc.errors()))
        return await _problem(request, problem)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return problem_response(
            exc.status_code,
            str(exc.detail),
            kind=HTTPStatus(exc.status_code).phrase.lower().replace(" ", "-"),
            instance=instance_of(request),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RecordNotDurable)
    async def _not_recorded(request: Request, exc: RecordNotDurable) -> Response:
        # Not answered as recorded: the phone keeps the event and sends it again, with the same
        # event_id (the recorder has logged the cause).
        return problem_response(
            503,
            "The prediction could not be recorded (the database and the local spool are both "
            "unavailable); send the same event again later.",
            kind="not-recorded",
            instance=instance_of(request),
            headers={"Retry-After": str(NOT_RECORDED_RETRY_AFTER_S)},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Log the type and the route template only: exception text can carry request values
        # (health data), and paths carry user ids.
        route = getattr(request.scope.get("route"), "path", "unmatched")
        log.error("unhandled error on %s: %s", route, type(exc).__name__)
        return problem_response(
            500, "Internal error.", kind="internal-error", instance=instance_of(request)
        )
