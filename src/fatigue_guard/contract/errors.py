"""Turn validation failures into the ``{field, message}`` list every problem+json answer carries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError

# Prefixes that FastAPI puts in front of a field's location and that a client never wrote.
_TRANSPORT_LOCS = {"body", "query", "path", "header"}


def field_path(loc: Sequence[Any]) -> str:
    """``("body", "features", "hrv_rmssd_ms")`` -> ``"features.hrv_rmssd_ms"``.

    Pydantic adds the type name of a union member to the location (``int``, ``float``); those
    are dropped so the path names what the client sent.
    """
    parts: list[str] = []
    for i, part in enumerate(loc):
        if i == 0 and part in _TRANSPORT_LOCS:
            continue
        if isinstance(part, int):
            parts.append(f"[{part}]")
            continue
        text = str(part)
        if text in {"int", "float", "bool", "str", "function-after[_finite(), int]"} or "[" in text:
            continue
        parts.append(text)
    return ".".join(parts).replace(".[", "[") or "body"


def _message(error: dict[str, Any]) -> str:
    msg = str(error.get("msg", "invalid value"))
    kind = error.get("type", "")
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        return "unknown field (not in the feature contract or the request schema)"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return msg


def field_errors(errors: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """One entry per distinct field; a union's per-member duplicates collapse into one."""
    seen: dict[str, str] = {}
    for error in errors:
        path = field_path(error.get("loc", ()))
        seen.setdefault(path, _message(error))
    return [{"field": path, "message": message} for path, message in seen.items()]


def validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    return field_errors(exc.errors(include_url=False))
