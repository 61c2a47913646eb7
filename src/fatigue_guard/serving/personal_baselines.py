"""Fill the personal-baseline features a prediction request leaves out, from the person's history.

A device may send raw nightly measurements only: the API computes the baselines it left out with
the one shared definition (``contract.baselines``), from the days before the moment that earlier
requests and feedback recorded (``storage.sql.personal_history``). A baseline the device did
send is used as sent (the schema has validated it).

The hot path keeps each recent person's history in the process: a cache miss loads it with one
query, and every recorded moment or label is added to SQL and then to the cached copy. Another
replica's writes reach this one's copy when it expires (``baseline_cache_ttl_s``); because a
baseline only reads days strictly before the moment's, only a write of the last seconds before
a date changes can be missed. An erased person's copy is dropped by the replica that erased them
and expires on the others, and with their keys gone no request of theirs can read it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Final

from starlette.concurrency import run_in_threadpool

from fatigue_guard.contract.baselines import (
    BASELINE_FEATURES,
    PersonalHistory,
    raw_moment,
)
from fatigue_guard.contract.schemas import PredictionRequest
from fatigue_guard.storage.sql.personal_history import LabelRow, MomentRow, PersonalHistoryStore

log = logging.getLogger(__name__)

# Bit of each baseline feature in the stored ``server_computed`` mask.
FEATURE_BITS: Final[dict[str, int]] = {name: 1 << i for i, name in enumerate(BASELINE_FEATURES)}


def computed_names(mask: int) -> tuple[str, ...]:
    """The baseline features a ``server_computed`` mask names."""
    return tuple(name for name, bit in FEATURE_BITS.items() if mask & bit)


@dataclass(frozen=True, slots=True)
class Filled:
    """A request with its missing baselines filled, and the mask of those the server computed."""

    request: PredictionRequest
    server_computed: int


@dataclass(slots=True)
class _Cached:
    history: PersonalHistory
    loaded_at: float


class PersonalBaselines:
    """Per-person histories: cached in the process, kept in SQL. Thread-safe."""

    def __init__(
        self, store: PersonalHistoryStore, *, ttl_s: float, max_people: int, enabled: bool = True
    ) -> None:
        self._store = store
        self._enabled = enabled
        self._ttl_s = ttl_s
        self._max_people = max_people
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._lock = threading.Lock()
        self._writer = _Writer(store)

    # -- the cache --------------------------------------------------------------------------

    def _cached(self, user_id: str) -> PersonalHistory | None:
        with self._lock:
            entry = self._cache.get(user_id)
            if entry is None:
                return None
            if time.monotonic() - entry.loaded_at > self._ttl_s:
                del self._cache[user_id]
                return None
            self._cache.move_to_end(user_id)
            return entry.history

    def _load(self, user_id: str) -> PersonalHistory:
        loaded_at = time.monotonic()
        history = self._store.load(user_id)
        with self._lock:
            self._cache[user_id] = _Cached(history, loaded_at)
            self._cache.move_to_end(user_id)
            while len(self._cache) > self._max_people:
                self._cache.popitem(last=False)
        return history

    async def _history(self, user_id: str) -> PersonalHistory | None:
        history = self._cached(user_id)
        if history is not None:
            return history
        try:
            return await run_in_threadpool(self._load, user_id)
        except Exception as exc:  # the database is down: answer without the baselines
            log.warning("personal history unavailable (%s: %s)", type(exc).__name__, exc)
            return None

    def forget(self, user_id: str) -> None:
        """Drop ``user_id``'s cached history (after an erasure)."""
        with self._lock:
            self._cache.pop(user_id, None)

    # -- the request path -------------------------------------------------------------------

    async def fill(self, requests: Sequence[PredictionRequest]) -> list[Filled]:
        """Each request with the baselines it left out computed, in order: a later item of a
        batch also sees the nights of the same person's earlier items."""
        if not self._enabled:
            return [Filled(r, 0) for r in requests]
        missing = [
            [n for n in BASELINE_FEATURES if getattr(r.features, n) is None] for r in requests
        ]
        needed = {r.user_id for r, names in zip(requests, missing, strict=True) if names}
        batch = len(requests) > 1
        working: dict[str, PersonalHistory | None] = {}
        out = []
        for request, names in zip(requests, missing, strict=True):
            user = request.user_id
            if user not in needed:
                out.append(Filled(request, 0))
                continue
            if user not in working:
                shared = await self._history(user)
                # A batch works on a private copy: the shared one only takes what was written.
                working[user] = shared if shared is None or not batch else self._copy(shared)
            history = working[user]
            if history is None:
                out.append(Filled(request, 0))
                continue
            moment = raw_moment(request.measured_at, request.features, request.raw)
            with self._lock:
                values = history.baselines(moment)
            if batch:
                history.add_moment(moment)
            update = {n: values[n] for n in names if values[n] is not None}
            features = request.features.model_copy(update=update)
            mask = sum(FEATURE_BITS[n] for n in update)
            out.append(Filled(request.model_copy(update={"features": features}), mask))
        return out

    def _copy(self, history: PersonalHistory) -> PersonalHistory:
        with self._lock:
            return PersonalHistory({day: replace(r) for day, r in history.days.items()})

    def remember(self, filled: Sequence[Filled]) -> None:
        """Add recorded moments to their people's histories: the cached copies at once, SQL
        through the background writer (no database work on the request's path)."""
        if not self._enabled:
            return
        rows = []
        for item in filled:
            request = item.request
            moment = raw_moment(request.measured_at, request.features, request.raw)
            moment_day, night_day = moment.dates
            record = moment.night_record()
            rows.append(
                MomentRow(
                    request.user_id,
                    request.event_id,
                    moment_day,
                    night_day,
                    record,
                    item.server_computed,
                )
            )
            history = self._cached(request.user_id)
            if history is not None:
                # A re-sent event changes nothing here: a night keeps its first reading.
                with self._lock:
                    history.add(night_day, record)
        self._writer.add_moments(rows)

    async def label(self, user_id: str, event_id: uuid.UUID, positive: bool) -> None:
        """Count a new fatigue report on its moment's date."""
        if not self._enabled:
            return
        day = self._writer.add_label(user_id, event_id, positive)
        if day is None:  # the moment was written before (or by another replica): look it up
            try:
                day = await run_in_threadpool(self._store.add_label, user_id, event_id, positive)
            except Exception as exc:
                log.warning("personal history label lost (%s: %s)", type(exc).__name__, exc)
                return
        history = self._cached(user_id) if day is not None else None
        if history is not None and day is not None:
            with self._lock:
                history.add_label(day, positive)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, then stop the writer (the API's shutdown)."""
        self._writer.close(timeout_s)


class _Writer:
    """Writes recorded moments and labels to SQL in batches, on a thread of its own.

    One transaction per batch, gathered over ``linger_s``: on SQLite a commit is an fsync, which
    one per request would double. A failed batch is retried until it is written; moments still
    waiting are known by event id, so a label that follows its moment at once still finds the
    moment's date.
    """

    def __init__(
        self, store: PersonalHistoryStore, retry_s: float = 1.0, linger_s: float = 0.05
    ) -> None:
        self._store = store
        self._retry_s = retry_s
        self._linger_s = linger_s
        self._moments: list[MomentRow] = []
        self._labels: list[LabelRow] = []
        self._waiting: dict[uuid.UUID, MomentRow] = {}
        self._busy = False
        self._closing = False
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def add_moments(self, rows: Sequence[MomentRow]) -> None:
        with self._wake:
            self._moments.extend(rows)
            for row in rows:
                self._waiting.setdefault(row.event_id, row)
            self._start()
            self._wake.notify()

    def add_label(self, user_id: str, event_id: uuid.UUID, positive: bool) -> date | None:
        """Queue the label of a moment still waiting to be written; its date, else ``None``."""
        with self._wake:
            moment = self._waiting.get(event_id)
            if moment is None or moment.user_id != user_id:
                return None
            self._labels.append(LabelRow(user_id, moment.moment_day, positive))
            self._wake.notify()
            return moment.moment_day

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="personal-history", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not (self._moments or self._labels or self._closing):
                    self._wake.wait()
                closing = self._closing
            if not closing:
                time.sleep(self._linger_s)  # gather the moments of the next few milliseconds
            with self._wake:
                if not (self._moments or self._labels):
                    if self._closing:
                        return
                    continue
                moments, self._moments = self._moments, []
                labels, self._labels = self._labels, []
                self._busy = True
            try:
                self._store.add(moments, labels)
            except Exception as exc:
                log.warning(
                    "personal history write failed, retrying (%s: %s)", type(exc).__name__, exc
                )
                with self._wake:
                    self._moments[:0], self._labels[:0] = moments, labels
                    self._busy = False
                    self._wake.notify_all()
                    if self._closing:
                        return
                time.sleep(self._retry_s)
                continue
            with self._wake:
                for row in moments:
                    self._waiting.pop(row.event_id, None)
                self._busy = False
                self._wake.notify_all()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued is written; whether it was, within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._wake:
            while self._moments or self._labels or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self._wake.wait(left)
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        self.flush(timeout_s)
        with self._wake:
            self._closing = True
            self._wake.notify_all()


def _left_out(request: PredictionRequest) -> list[str]:
    return [name for name in BASELINE_FEATURES if getattr(request.features, name) is None]
