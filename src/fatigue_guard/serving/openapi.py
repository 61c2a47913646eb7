"""The OpenAPI document, completed where FastAPI cannot see what the routes do.

Most routes parse their raw body themselves and answer with plain ``Response`` objects, and
every error leaves through :mod:`fatigue_guard.serving.problems`; FastAPI sees none of that.
This module finishes the generated document in one place, so that code generators, the fuzzer
and clients get a document that resolves and tells the truth:

* request body schemas carry Pydantic's ``$defs``, whose ``#/$defs/...`` refs resolve against
  the document root in OpenAPI 3.1, where there are none: the definitions move to
  ``components/schemas`` and the refs follow;
* each operation lists the error statuses it can answer, as ``application/problem+json`` with
  the one ``Problem`` schema (FastAPI's own 422 shape is never sent, so it goes);
* success bodies the routes build by hand get a schema, so a response that drifts from its
  documentation fails the fuzzer's conformance check;
* the device key and the admin token are declared as security schemes, per operation.

:data:`OPERATIONS` is the table of what each route answers; a route missing from it fails the
OpenAPI tests (tests/serving/test_openapi_document.py), not the document at run time.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal
from uuid import UUID

from fastapi import FastAPI
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from fatigue_guard.contract.alerting import Alerting
from fatigue_guard.contract.schemas import FieldError, PredictionResponse
from fatigue_guard.edge.manifest import EdgeManifest
from fatigue_guard.serving.problems import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE

COMPONENTS_REF = "#/components/schemas/"
PROBLEM_REF = COMPONENTS_REF + "Problem"

DEVICE_SCHEMES = ("deviceKey", "deviceKeyHeader")
ADMIN_SCHEME = "adminToken"

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "deviceKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "A device API key (`fgk_...`), issued for one user with "
        "`fatigue-guard keys create`: `Authorization: Bearer <key>`.",
    },
    "deviceKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The same device API key in `X-API-Key`, for clients that cannot set "
        "`Authorization`.",
    },
    ADMIN_SCHEME: {
        "type": "http",
        "scheme": "bearer",
        "description": "The operator token (FATIGUE_GUARD_ADMIN_TOKEN): "
        "`Authorization: Bearer <token>`. Never a device key; without a configured token the "
        "admin routes answer 404.",
    },
}


# -- documentation-only models of the bodies the routes build by hand ------------------------
# Kept next to the table that uses them; the fuzzer's schema check against the live app is
# what keeps them honest.


def _problem_schema() -> dict[str, Any]:
    """RFC 9457 problem details, the body of every error answer (see problems.py)."""
    return {
        "title": "Problem",
        "type": "object",
        "description": "RFC 9457 problem details: every error answer has this shape.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {
                "type": "string",
                "format": "uri",
                "description": f"URI naming the kind of problem, under {PROBLEM_TYPE_BASE}.",
            },
            "title": {"type": "string", "description": "The HTTP status phrase."},
            "status": {
                "type": "integer",
                "minimum": 100,
                "maximum": 599,
                "description": "The HTTP status code, repeated.",
            },
            "detail": {"type": "string", "description": "What went wrong, for a person."},
            "instance": {
                "type": "string",
                "format": "uri-reference",
                "description": "The request path the problem occurred on.",
            },
            "errors": {
                "type": "array",
                "items": {"$ref": COMPONENTS_REF + "FieldError"},
                "description": "Validation failures, one per offending field, with a dotted "
                "path (`features.hrv_rmssd_ms`, `items[3].user_id`): present on 422 answers.",
            },
        },
    }


class HealthStatus(BaseModel):
    status: Literal["ok"]


class Check(BaseModel):
    """One readiness check; with the admin token it also carries the check's details."""

    model_config = ConfigDict(extra="allow")

    ok: bool


class Readiness(BaseModel):
    status: Literal["ready", "not-ready"]
    checks: dict[str, Check]


class Me(BaseModel):
    user_id: str


class FeedbackResult(BaseModel):
    event_id: UUID
    fatigue_event: bool
    source: Literal["self_report", "incident", "wearable"]
    observed_at: AwareDatetime
    created: bool = Field(description="False for a repeat: the first report is returned.")


class BatchItemResult(BaseModel):
    index: int = Field(ge=0)
    status: Literal[200, 403, 409, 422]
    result: PredictionResponse | None = None
    errors: list[FieldError] | None = None


class BatchPredictionResult(BaseModel):
    items: list[BatchItemResult]
    succeeded: int = Field(ge=0)
    failed: int = Field(ge=0)


class IndexedErrors(BaseModel):
    index: int = Field(ge=0)
    errors: list[FieldError]


class SyncResult(BaseModel):
    accepted: int = Field(ge=0)
    duplicates: int = Field(ge=0)
    accepted_pending: int = Field(
        ge=0,
        description="Stored while the SQL database was down: keep these events and send them "
        "again later; the answer then says accepted, duplicate or conflict.",
    )
    pending: list[int] = Field(description="Indices of the accepted_pending events.")
    conflicts: list[IndexedErrors]
    rejected: list[IndexedErrors]


class ServedModel(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    version: str
    threshold: float
    alerting: Alerting = Field(
        description="advisory: the version could not meet the precision floor and never alerts."
    )
    runtime: str
    loaded_at: AwareDatetime
    source: str | None
    sha256: str | None


class ReloadResult(BaseModel):
    outcome: str
    previous: str | None
    registry: Literal["ok", "unreachable"]
    reason: str | None
    model: ServedModel | None


class AdminStatus(BaseModel):
    model: ServedModel | None
    model_last_error: str | None
    model_refused: list[dict[str, Any]]
    stores: dict[str, bool]
    recorder: dict[str, Any]


class ErasureResult(BaseModel):
    user_id: str
    removed: dict[str, int] = Field(
        description="Rows deleted per SQL table, and records and files rewritten in the blob store."
    )
    tombstoned_at: AwareDatetime = Field(
        description="The user's records received up to this instant that are still on their way "
        "(a replica's spool, a batch being written to the blob store) are dropped when they "
        "arrive, and readers skip any that remain."
    )


# -- what each operation answers ----------------------------------------------------------

Security = Literal["none", "device", "admin", "optional-admin"]

_ERROR_TEXT: dict[int, str] = {
    401: "No credentials, or not valid ones.",
    403: "The credentials may not do this.",
    404: "Not found.",
    409: "Conflict.",
    413: "The body is larger than the configured limit (FATIGUE_GUARD_MAX_BODY_BYTES).",
    415: "The body is not declared as JSON (Content-Type).",
    422: "The request does not satisfy the contract; `errors` names each offending field.",
    429: "Rate limit of this device key exceeded; retry after `Retry-After` seconds.",
    503: "A dependency is unavailable; retry (after `Retry-After` seconds where given).",
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "The authentication scheme to use (`Bearer`).",
            "schema": {"type": "string"},
        }
    },
    415: {
        "Accept-Post": {
            "description": "The media type the route accepts.",
            "schema": {"type": "string"},
        }
    },
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}

_ETAG = {
    "ETag": {"description": "Revalidate with If-None-Match.", "schema": {"type": "string"}},
    "Cache-Control": {"schema": {"type": "string"}},
}
_NOT_MODIFIED = {
    "description": "The copy named in If-None-Match is current (no body).",
    "headers": _ETAG,
}
_IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "ETag of the copy the client holds; 304 when it is current.",
    "schema": {"type": "string"},
}


@dataclass(frozen=True)
class Operation:
    """What one route answers: who may call it, success bodies, and error statuses."""

    security: Security
    errors: dict[int, str]  # status -> when it is answered (overrides the generic text)
    # Bodies FastAPI cannot document (the route returns a plain Response); a route with a
    # response_model is already documented.
    success: dict[int, type[BaseModel]] = field(default_factory=dict)
    binary: bool = False  # the 200 body is a file (application/octet-stream), not JSON
    conditional: bool = False  # ETag / If-None-Match / 304


# Device routes: a key store that cannot be reached is a 503 before anything else happens.
_DEVICE_ERRORS = {
    401: "No device key, or not a valid one.",
    429: _ERROR_TEXT[429],
    503: "The key store is unreachable; retry after `Retry-After` seconds.",
}
# The SQL database and the local spool both failed: nothing was stored, so nothing is answered.
_NOT_RECORDED = (
    "predictions could not be recorded (SQL database unreachable and local spool not writable): "
    "nothing was stored; send the same events again after `Retry-After` seconds."
)
_BODY_ERRORS = {413: _ERROR_TEXT[413], 415: _ERROR_TEXT[415], 422: _ERROR_TEXT[422]}
_ADMIN_ERRORS = {
    401: "No admin token.",
    403: "Not the admin token (a device key is never one).",
    404: "Admin routes are disabled: no admin token is configured.",
}

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("get", "/healthz"): Operation("none", {}, {200: HealthStatus}),
    # Not ready is a readiness body too, not a problem: probes read the status code only.
    ("get", "/readyz"): Operation("optional-admin", {}, {200: Readiness, 503: Readiness}),
    ("post", "/v1/predictions"): Operation(
        "device",
        {
            **_DEVICE_ERRORS,
            **_BODY_ERRORS,
            403: "user_id is not the key's user.",
            409: "event_id is already used by another user's event.",
            503: "The key store is unreachable, no model is loaded yet (see /readyz), or the "
            + _NOT_RECORDED,
        },
    ),
    ("post", "/v1/predictions:batch"): Operation(
        "device",
        {
            **_DEVICE_ERRORS,
            **_BODY_ERRORS,
            422: "The batch itself is malformed (per-item failures are answered in the 200 "
            "body instead).",
            503: "The key store is unreachable, no model is loaded yet (see /readyz), or the "
            + _NOT_RECORDED,
        },
        {200: BatchPredictionResult},
    ),
    ("post", "/v1/feedback"): Operation(
        "device",
        {
            **_DEVICE_ERRORS,
            **_BODY_ERRORS,
            404: "No prediction with this event_id for this user (the same answer for another "
            "user's event).",
            503: "The key store or the feedback store is unreachable.",
        },
        {200: FeedbackResult, 201: FeedbackResult},
    ),
    ("post", "/v1/sync"): Operation(
        "device",
        {
            **_DEVICE_ERRORS,
            **_BODY_ERRORS,
            422: "The upload itself is malformed (per-event failures are answered in the 200 "
            "body instead).",
            503: "The key store is unreachable, or the " + _NOT_RECORDED,
        },
        {200: SyncResult},
    ),
    ("get", "/v1/models/edge/manifest"): Operation(
        "device",
        {
            **_DEVICE_ERRORS,
            404: "No edge model is published yet.",
            503: "The key store or the model store is unreachable.",
        },
        {200: EdgeManifest},
        conditional=True,
    ),
    ("get", "/v1/models/edge/files/{model_version}"): Operation(
        "device",
        {
            **_DEVICE_ERRORS,
            404: "No edge model file for this version.",
            503: "The key store or the model store is unreachable, or the file failed its "
            "integrity check.",
        },
        binary=True,
        conditional=True,
    ),
    ("post", "/v1/admin/models/reload"): Operation(
        "admin",
        {
            **_ADMIN_ERRORS,
            409: "The production version was refused (it failed to load or its check); the "
            "served version is kept.",
            503: "No model to serve: the registry has none or cannot be reached.",
        },
        {200: ReloadResult},
    ),
    ("get", "/v1/admin/status"): Operation("admin", dict(_ADMIN_ERRORS), {200: AdminStatus}),
    ("delete", "/v1/admin/users/{user_id}"): Operation(
        "admin",
        {
            **_ADMIN_ERRORS,
            422: "user_id is not a valid user id.",
            503: "The SQL database cannot be reached (nothing was erased), or the blob store "
            "could not be rewritten (SQL is erased and tombstoned; erase again to finish).",
        },
        {200: ErasureResult},
    ),
    ("get", "/v1/me"): Operation("device", dict(_DEVICE_ERRORS), {200: Me}),
}


def _security(kind: Security) -> list[dict[str, list[str]]]:
    if kind == "device":
        return [{name: []} for name in DEVICE_SCHEMES]
    if kind == "admin":
        return [{ADMIN_SCHEME: []}]
    if kind == "optional-admin":
        return [{}, {ADMIN_SCHEME: []}]  # {} = anonymous allowed; the token adds detail
    return []


# -- building the document ----------------------------------------------------------------


def _walk(node: Any) -> Any:
    """Every dict in a JSON tree, parents before children."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _add_schema(schemas: dict[str, Any], name: str, schema: dict[str, Any]) -> None:
    existing = schemas.setdefault(name, schema)
    if existing != schema:
        # Two different models with one name would silently point every ref at one of them.
        raise ValueError(f"two different schemas named {name!r} in the OpenAPI document")


def _hoist_defs(document: dict[str, Any]) -> None:
    """Move every ``$defs`` into components/schemas and point ``#/$defs/...`` refs there."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    found = True
    while found:  # a hoisted definition can carry $defs of its own
        found = False
        for node in list(_walk(document)):
            defs = node.pop("$defs", None)
            if defs:
                found = True
                for name, schema in defs.items():
                    _add_schema(schemas, name, schema)
    for node in _walk(document):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node["$ref"] = COMPONENTS_REF + ref.removeprefix("#/$defs/")


def _register(schemas: dict[str, Any], model: type[BaseModel]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template=COMPONENTS_REF + "{model}")
    for name, definition in schema.pop("$defs", {}).items():
        _add_schema(schemas, name, definition)
    name = str(schema.get("title", model.__name__))
    _add_schema(schemas, name, schema)
    return {"$ref": COMPONENTS_REF + name}


def _error_response(status: int, text: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": text or _ERROR_TEXT.get(status, HTTPStatus(status).phrase),
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}},
    }
    if status in _ERROR_HEADERS:
        response["headers"] = copy.deepcopy(_ERROR_HEADERS[status])
    return response


def _json_response(status: int, model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": HTTPStatus(status).phrase,
        "content": {"application/json": {"schema": _register(schemas, model)}},
    }


def _complete_operation(operation: dict[str, Any], op: Operation, schemas: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    # FastAPI's default 422 (HTTPValidationError) is never what the app sends.
    responses.pop("422", None)
    for status, model in op.success.items():
        responses[str(status)] = _json_response(status, model, schemas)
    if op.binary:
        responses["200"] = {
            "description": "OK",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    if op.conditional:
        responses["200"]["headers"] = copy.deepcopy(_ETAG)
        responses["304"] = copy.deepcopy(_NOT_MODIFIED)
        parameters = operation.setdefault("parameters", [])
        if not any(p.get("name") == "If-None-Match" for p in parameters):
            parameters.append(dict(_IF_NONE_MATCH))
    for status, text in op.errors.items():
        responses[str(status)] = _error_response(status, text)
    operation["responses"] = dict(sorted(responses.items()))
    operation["security"] = _security(op.security)


def complete_document(document: dict[str, Any]) -> dict[str, Any]:
    """The finished document (a new dict); ``document`` is FastAPI's generated one."""
    document = copy.deepcopy(document)
    _hoist_defs(document)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    _add_schema(schemas, "FieldError", FieldError.model_json_schema())
    _add_schema(schemas, "Problem", _problem_schema())
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            op = OPERATIONS.get((method, path))
            if op is not None:
                _complete_operation(operation, op, schemas)
    for unused in ("HTTPValidationError", "ValidationError"):  # the first refers to the second
        if COMPONENTS_REF + unused not in {n.get("$ref") for n in _walk(document)}:
            schemas.pop(unused, None)
    components["securitySchemes"] = copy.deepcopy(SECURITY_SCHEMES)
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`complete_document` at ``app.openapi_url`` (built once, on first use)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if getattr(app.state, "openapi_document", None) is None:
            app.state.openapi_document = complete_document(generate())
        return app.state.openapi_document

    app.openapi = openapi  # type: ignore[method-assign]
