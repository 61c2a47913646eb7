"""Request bodies the serving tests build from the trained registry's live rows."""

from __future__ import annotations

import uuid
from typing import Any

from tests.serving.conftest import LiveApi


def own_bodies(api: LiveApi, n: int) -> list[dict[str, Any]]:
    """``n`` prediction bodies of one user (the first user of the live rows)."""
    bodies = api.bodies(400)
    own = [b for b in bodies if b["user_id"] == bodies[0]["user_id"]]
    assert len(own) >= n
    return own[:n]


def edge_event(
    body: dict[str, Any],
    version: str,
    *,
    event_id: str | None = None,
    new_id: bool = False,
    alert: bool = False,
) -> dict[str, Any]:
    """A sync event for ``body`` as the phone's edge model ``version`` scored it: the body's own
    event_id, ``event_id``, or (``new_id``) a fresh one."""
    return {
        **{k: body[k] for k in ("user_id", "measured_at", "features")},
        "event_id": str(uuid.uuid4()) if new_id else (event_id or body["event_id"]),
        "prediction": {
            "fatigue_probability": 0.7 if alert else 0.3,
            "alert": alert,
            "model_version": version,
        },
    }
