"""``FatigueClient``: the offline-first reference client.

Online, a prediction comes from the server (``served_by="server"``). When the server cannot
answer - network error, timeout, 5xx or 429 - the same vector is scored on the device with the
cached edge model (``served_by="edge"``) and the event is queued durably; :meth:`sync` uploads
the queue later. Both paths validate the vector locally against the same contract first, so a
bad vector fails the same way online and offline and is never queued.

Idempotency is by ``event_id`` end to end: the client makes it, the queue is keyed by it, the
server stores each once. A request that reached the server but whose answer was lost is scored
again on the device and later synced; the server then counts it as a duplicate and keeps its
own first answer. Nothing is delivered twice and nothing is lost.

The mobile team ports this file's logic; the pieces it delegates to are small on purpose:
:mod:`.api` (what counts as offline), :mod:`.queue` (durable outbox), :mod:`.model_store`
(verified model swap), :mod:`.backoff`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pydantic import TypeAdapter, ValidationError

from fatigue_guard import __version__
from fatigue_guard.client.api import ApiClient, ApiError, Unreachable
from fatigue_guard.client.backoff import Backoff
from fatigue_guard.client.history import LocalHistory
from fatigue_guard.client.model_store import ModelRefused, ModelStore
from fatigue_guard.client.queue import LocalQueue, QueueCounts
from fatigue_guard.client.results import Prediction, RefreshResult, SyncReport
from fatigue_guard.contract.alerting import decide_alert, parse_alerting
from fatigue_guard.contract.baselines import raw_moment
from fatigue_guard.contract.errors import validation_errors
from fatigue_guard.contract.schemas import Features, RawMeasurements, Timestamp
from fatigue_guard.edge.manifest import EdgeManifest

log = logging.getLogger(__name__)

MANIFEST_PATH = "/v1/models/edge/manifest"
# The server's rule, so a stamp it would refuse fails here, online or offline, and is never queued.
_TIMESTAMP: TypeAdapter[datetime] = TypeAdapter(Timestamp)
_USER_KEY = "user_id"


class InvalidFeatures(ValueError):
    """The vector breaks the feature contract; ``errors`` as the API would name them."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


class EdgeModelUnavailable(RuntimeError):
    """Offline and no edge model on the device yet: call ``refresh_model()`` while online."""


class FatigueClient:
    """One device (one user, one API key), with its state in ``data_dir``.

    ``user_id`` may be left out: on first use the client asks the API whose key it holds
    (``GET /v1/me``), which needs the network once; it is then stored in ``data_dir``, so a
    restarted app works offline with just the three arguments. Passing it checks it instead.
    ``transport`` is handed to httpx (tests and the device simulator use it to cut the network).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        data_dir: str | Path,
        *,
        user_id: str | None = None,
        timeout_s: float = 2.0,
        transfer_timeout_s: float = 30.0,
        sync_batch_size: int = 200,
        backoff: Backoff | None = None,
        client_info: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.queue = LocalQueue(self.data_dir / "client.db")
        self.api = ApiClient(
            base_url,
            api_key,
            timeout_s=timeout_s,
            transfer_timeout_s=transfer_timeout_s,
            transport=transport,
        )
        stored = self.queue.get_meta(_USER_KEY)
        if user_id is not None and stored is not None and user_id != stored:
            raise ValueError(f"{self.data_dir} belongs to another user; use another data_dir")
        if user_id is None and stored is None:
            user_id = self._whoami()
        self.user_id: str = user_id or stored  # type: ignore[assignment]
        if stored is None:
            self.queue.set_meta(_USER_KEY, self.user_id)
        self.models = ModelStore(self.data_dir / "models")
        self.baselines = LocalHistory(self.data_dir / "baselines.json")
        self.sync_batch_size = min(sync_batch_size, 1000)  # the API's batch limit
        self.backoff = backoff or Backoff()
        self.client_info = dict(
            client_info or {"app_version": f"reference-{__version__}", "platform": "python"}
        )
        self._sleep = sleep

    def _whoami(self) -> str:
        """The key's user, from the API; a first start needs the network once for it."""
        try:
            return str(self.api.get("/v1/me").json()["user_id"])
        except BaseException as exc:
            self.close()  # the constructor fails: release the queue file and the connection
            if isinstance(exc, Unreachable):
                raise ValueError(
                    "user_id is unknown and the API is unreachable to ask for it "
                    f"({exc}); pass user_id= or start once online"
                ) from None
            raise  # e.g. ApiError(401): the key itself is wrong

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        self.api.close()
        self.queue.close()

    def __enter__(self) -> FatigueClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def model_version(self) -> str | None:
        """The edge model on the device (None before the first successful refresh)."""
        return self.models.current.version if self.models.current else None

    def pending(self) -> QueueCounts:
        return self.queue.counts()

    # -- the four calls -------------------------------------------------------------------

    def predict(
        self,
        features: Mapping[str, Any],
        measured_at: datetime | str,
        *,
        event_id: str | uuid.UUID | None = None,
        raw: Mapping[str, float] | None = None,
    ) -> Prediction:
        """Server answer if it can give one, else the on-device model's (queued for sync).

        Personal baselines left out of ``features`` are computed by the server online and on
        the device offline, from the same history with the same definition. ``raw`` holds the
        measurements they need that are not features (the request's ``raw`` object).
        """
        validated = _validate(features)
        measured = RawMeasurements.model_validate(dict(raw)) if raw else None
        when = _aware(measured_at)
        event = str(event_id or uuid.uuid4())
        body = {
            "event_id": event,
            "user_id": self.user_id,
            "measured_at": when.isoformat(),
            "features": validated.model_dump(),
            "client": self.client_info,
        }
        if measured is not None:
            body["raw"] = measured.model_dump()
        moment = raw_moment(when, validated, measured)
        try:
            _, answer = self.api.post_json("/v1/predictions", body)
        except Unreachable as exc:
            log.info("server unreachable (%s): predicting on the device", exc.reason)
            filled = Features.model_validate(self.baselines.fill(validated.model_dump(), moment))
            prediction = self._predict_on_device({**body, "features": filled.model_dump()}, filled)
            self.baselines.record(event, moment)
            return prediction
        self.baselines.record(event, moment)
        return Prediction(
            event_id=str(answer["event_id"]),
            fatigue_probability=float(answer["fatigue_probability"]),
            alert=bool(answer["alert"]),
            threshold=float(answer["threshold"]),
            model_version=str(answer["model"]["version"]),
            served_by="server",
            alerting=parse_alerting(answer.get("alerting")),
        )

    def sync(self) -> SyncReport:
        """Upload queued edge events (then queued feedback) in batches, with back-off.

        Removes only what the server acknowledged (accepted or duplicate); an event it stored but
        could not check yet (``pending``) stays queued for the next call. An event the server
        reports as a conflict (its event_id belongs to another user's event) is kept, parked, and
        reported. Stops early, without raising, when the server stays unreachable; the rest waits
        for the next call.
        """
        counts: dict[str, int] = dict.fromkeys(
            (
                "sent",
                "accepted",
                "duplicates",
                "rejected",
                "conflicts",
                "pending",
                "feedback_sent",
                "feedback_rejected",
            ),
            0,
        )
        conflicted: list[str] = []
        error = self._sync_events(counts, conflicted)
        if error is None:
            # Feedback after its events: the server only takes feedback for events it knows.
            error = self._sync_feedback(counts)
        remaining = self.queue.counts()
        return SyncReport(
            **counts,
            conflict_event_ids=tuple(conflicted),
            remaining=remaining.events + remaining.feedback,
            complete=error is None,
            error=error,
        )

    def refresh_model(self) -> RefreshResult:
        """Download the published edge model if its version changed; verify before use."""
        current = self.models.current
        have = current.version if current else None
        try:
            response = self.api.get(MANIFEST_PATH, etag=current.etag if current else None)
        except Unreachable as exc:
            return RefreshResult("unreachable", have, exc.reason)
        except ApiError as exc:
            if exc.status == 404:
                return RefreshResult("unavailable", have, str(exc))
            raise
        if response.status_code == 304:
            return RefreshResult("unchanged", have)
        etag = response.headers.get("etag")
        try:
            manifest = EdgeManifest.model_validate_json(response.content)
        except ValidationError as exc:
            return self._refused(have, f"manifest does not parse: {exc.error_count()} errors")
        if current and (current.version, current.manifest.sha256) == (
            manifest.model_version,
            manifest.sha256,
        ):
            self.models.remember_etag(etag)
            return RefreshResult("unchanged", have)
        # Conditional on the bytes we hold: a new version with identical bytes is a 304.
        file_etag = f'"{current.manifest.sha256}"' if current else None
        try:
            download = self.api.get(manifest.url, etag=file_etag)
        except Unreachable as exc:
            return RefreshResult("unreachable", have, exc.reason)
        data = self.models.file_bytes() if download.status_code == 304 else download.content
        try:
            installed = self.models.install(manifest, data or b"", etag)
        except ModelRefused as exc:
            return self._refused(have, str(exc))
        log.info("edge model v%s installed (%s)", installed.version, manifest.kind)
        return RefreshResult("updated", installed.version)

    def submit_feedback(
        self,
        event_id: str | uuid.UUID,
        fatigue_event: bool,
        *,
        source: str = "self_report",
        observed_at: datetime | None = None,
    ) -> str:
        """Report the ground truth for an event: ``"sent"``, or ``"queued"`` until sync."""
        body = {
            "event_id": str(event_id),
            "fatigue_event": bool(fatigue_event),
            "source": source,
            "observed_at": _aware(observed_at or datetime.now(UTC), "observed_at").isoformat(),
        }
        self.baselines.label(body["event_id"], bool(fatigue_event))
        if self.queue.is_pending("event", body["event_id"]):
            # The server does not know this edge event yet; sync sends it first.
            self.queue.enqueue("feedback", body["event_id"], body)
            return "queued"
        try:
            self.api.post_json("/v1/feedback", body)
        except Unreachable:
            self.queue.enqueue("feedback", body["event_id"], body)
            return "queued"
        return "sent"

    # -- internals ------------------------------------------------------------------------

    def _predict_on_device(self, body: dict[str, Any], validated: Any) -> Prediction:
        model = self.models.current
        if model is None:
            raise EdgeModelUnavailable(
                "the server is unreachable and no edge model is on this device yet"
            )
        row = np.asarray(validated.as_row(), dtype=np.float32)
        probability = float(model.predictor.predict_one(row))
        alert = decide_alert(probability, model.threshold, model.alerting)
        event = {
            **body,
            "prediction": {
                "fatigue_probability": probability,
                "alert": alert,
                "model_version": model.version,
            },
        }
        # Durable before the answer is shown: an app killed now still syncs this event.
        self.queue.enqueue("event", body["event_id"], event)
        return Prediction(
            event_id=body["event_id"],
            fatigue_probability=probability,
            alert=alert,
            threshold=model.threshold,
            model_version=model.version,
            served_by="edge",
            alerting=model.alerting,
        )

    def _with_retries(self, call: Callable[[], tuple[int, dict[str, Any]]]) -> dict[str, Any]:
        """``call()`` retried with back-off while unreachable; re-raises the last Unreachable."""
        for retry in range(self.backoff.attempts):
            try:
                return call()[1]
            except Unreachable as exc:
                if retry + 1 >= self.backoff.attempts:
                    raise
                self._sleep(self.backoff.delay(retry, exc.retry_after_s))
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _sync_events(self, counts: dict[str, int], conflicted: list[str]) -> str | None:
        after = 0
        while True:  # bounded: each pass moves ``after`` past a batch, or returns
            batch = self.queue.pending("event", after_seq=after, limit=self.sync_batch_size)
            if not batch:
                return None
            payload = {"events": [item.payload for item in batch]}
            try:
                answer = self._with_retries(
                    lambda payload=payload: self.api.post_json(
                        "/v1/sync", payload, timeout_s=self.api.transfer_timeout_s
                    )
                )
            except Unreachable as exc:
                return exc.reason
            rejected = {int(r["index"]): r.get("errors", []) for r in answer.get("rejected", [])}
            conflicts = {int(c["index"]): c.get("errors", []) for c in answer.get("conflicts", [])}
            pending = {int(i) for i in answer.get("pending", [])}
            kept = rejected.keys() | conflicts.keys() | pending
            self.queue.remove(item.seq for i, item in enumerate(batch) if i not in kept)
            for index, errors in rejected.items():
                self.queue.reject(batch[index].seq, json.dumps(errors))
            for index, errors in conflicts.items():
                self._park_conflict(batch[index].event_id, errors)
                conflicted.append(batch[index].event_id)
            counts["sent"] += len(batch)
            counts["accepted"] += int(answer.get("accepted", 0))
            counts["duplicates"] += int(answer.get("duplicates", 0))
            counts["rejected"] += len(rejected)
            counts["conflicts"] += len(conflicts)
            counts["pending"] += len(pending)
            after = batch[-1].seq

    def _park_conflict(self, event_id: str, errors: list[dict[str, str]]) -> None:
        reason = f"event_id conflict: {json.dumps(errors)}"
        log.warning("event %s: its event_id belongs to another user's event; kept", event_id)
        self.queue.park("event", event_id, reason)
        # Its feedback could only ever find the other user's event: the server would refuse it.
        self.queue.park("feedback", event_id, reason)

    def _sync_feedback(self, counts: dict[str, int]) -> str | None:
        after = 0
        while True:  # bounded as above
            batch = self.queue.pending("feedback", after_seq=after, limit=self.sync_batch_size)
            if not batch:
                return None
            for item in batch:
                try:
                    self._with_retries(
                        lambda item=item: self.api.post_json("/v1/feedback", item.payload)
                    )
                except Unreachable as exc:
                    return exc.reason
                except ApiError as exc:  # e.g. its event was rejected: keep, count, park later
                    self.queue.reject(item.seq, str(exc))
                    counts["feedback_rejected"] += 1
                    continue
                self.queue.remove([item.seq])
                counts["feedback_sent"] += 1
            after = batch[-1].seq

    def _refused(self, have: str | None, reason: str) -> RefreshResult:
        log.warning("edge model download refused, keeping v%s: %s", have, reason)
        return RefreshResult("refused", have, reason)


def _validate(features: Mapping[str, Any]) -> Any:
    try:
        return Features.model_validate(dict(features))
    except ValidationError as exc:
        errors = [
            {
                **e,
                "field": e["field"]
                if e["field"].startswith("features")
                else f"features.{e['field']}",
            }
            for e in validation_errors(exc)
        ]
        raise InvalidFeatures(errors) from None


def _aware(value: datetime | str, field: str = "measured_at") -> datetime:
    try:
        return _TIMESTAMP.validate_python(value)
    except ValidationError as exc:
        errors = validation_errors(exc)
        raise InvalidFeatures([{"field": field, "message": errors[0]["message"]}]) from None
