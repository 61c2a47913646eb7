"""RFC 9457 problem details: every error the API returns has this one shape.

Clients code against ``errors: [{field, message}]``, so validation failures from any input path
(single prediction, batch item, sync event, feedback) name the offending field the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from fatigue_guard.contract.errors import field_errors

PROBLEM_MEDIA_TYPE = "application/problem+json"
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


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error path (ours, FastAPI's, Starlette's, unexpected) to problem+json."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(
            exc.status,
            exc.detail,
            kind=exc.kind,
            errors=exc.errors,
            instance=request.url.path,
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
            instance=request.url.path,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Log the type only: exception text can carry request values, i.e. health data.
        log.error("unhandled error on %s: %s", request.url.path, type(exc).__name__)
        return problem_response(
            500, "Internal error.", kind="internal-error", instance=request.url.path
        )
