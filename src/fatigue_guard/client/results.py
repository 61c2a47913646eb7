"""What the client's calls return (plain data, easy to port and to show in an app)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fatigue_guard.contract.alerting import ALERTING_ON, Alerting


@dataclass(frozen=True)
class Prediction:
    """One answer; ``served_by`` says whether the server or the on-device model produced it."""

    event_id: str
    fatigue_probability: float
    alert: bool
    threshold: float
    model_version: str
    served_by: Literal["server", "edge"]
    # "advisory": the model could not meet the precision floor; ``alert`` is always False.
    alerting: Alerting = ALERTING_ON


@dataclass(frozen=True)
class SyncReport:
    """One :meth:`FatigueClient.sync`: counts from the server's answers, what is still queued.

    ``complete`` is False when the server stayed unreachable after the retries: the rest is
    still queued for the next call. ``conflicts`` counts events whose event_id the server holds
    for another user (``conflict_event_ids`` names them): they stay on the device, parked,
    and need the user's or support's attention; sending them again cannot succeed. ``pending``
    counts events the server stored while it could not check them: they stay queued and the
    next sync gets their real answer.
    """

    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    conflicts: int = 0
    conflict_event_ids: tuple[str, ...] = ()
    # Stored by the server while its database was down; kept here and sent again next time.
    pending: int = 0
    feedback_sent: int = 0
    feedback_rejected: int = 0
    remaining: int = 0
    complete: bool = True
    error: str | None = None


RefreshStatus = Literal["updated", "unchanged", "refused", "unreachable", "unavailable"]


@dataclass(frozen=True)
class RefreshResult:
    """``updated`` (new model in use), ``unchanged`` (304 or same version), ``refused`` (download
    failed verification; the old model is kept), ``unreachable`` / ``unavailable`` (no manifest
    now; the old model is kept)."""

    status: RefreshStatus
    model_version: str | None
    reason: str | None = None
