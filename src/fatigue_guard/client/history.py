"""The phone's own day history, for the personal baselines of predictions made on the device.

Online, the server computes the baselines a request leaves out. Offline, the edge model needs
them too: the phone computes them from what it recorded itself (its moments and the feedback it
gave), with the same definition the server uses (``contract.baselines``), and sends them with
the synced event. The history is a small JSON file in the client's data folder, trimmed to the
days a baseline can still reach.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any, Final

from fatigue_guard.contract.baselines import (
    BASELINE_FEATURES,
    LONGEST_WINDOW_DAYS,
    DayRecord,
    PersonalHistory,
    RawMoment,
)

_FIELDS: Final[tuple[str, ...]] = (
    "sleep_h",
    "midpoint_h",
    "resting_hr_bpm",
    "hrv_rmssd_ms",
    "reports",
    "positives",
)
# Moments whose feedback may still come, by event id: their local date.
_MAX_MOMENTS: Final[int] = 4 * LONGEST_WINDOW_DAYS * 24


class LocalHistory:
    """A person's days and recent moments on the device; every change is saved at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.history = PersonalHistory()
        self.moments: dict[str, str] = {}
        if path.exists():
            data = json.loads(path.read_text())
            for day, values in data["days"].items():
                self.history.days[date.fromisoformat(day)] = DayRecord(
                    **dict(zip(_FIELDS, values, strict=True))
                )
            self.moments = dict(data["moments"])

    def _save(self) -> None:
        data: dict[str, Any] = {
            "days": {
                day.isoformat(): [getattr(record, name) for name in _FIELDS]
                for day, record in sorted(self.history.days.items())
            },
            "moments": self.moments,
        }
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data))
        os.replace(temporary, self.path)  # a crash leaves the old file or the new one

    def fill(self, features: dict[str, Any], moment: RawMoment) -> dict[str, Any]:
        """``features`` with the baselines it leaves out computed from the days before."""
        missing = [name for name in BASELINE_FEATURES if features.get(name) is None]
        if not missing:
            return features
        values = self.history.baselines(moment)
        return {**features, **{name: values[name] for name in missing}}

    def record(self, event_id: str, moment: RawMoment) -> None:
        """Add a moment's night and remember its date for the feedback that may follow."""
        moment_day, _ = moment.dates
        self.history.add_moment(moment)
        self.moments[event_id] = moment_day.isoformat()
        while len(self.moments) > _MAX_MOMENTS:
            del self.moments[next(iter(self.moments))]
        self.history.forget_before(max(self.history.days) if self.history.days else moment_day)
        self._save()

    def label(self, event_id: str, positive: bool) -> None:
        """Count a fatigue report on its moment's date (unknown moments: nothing to count)."""
        day = self.moments.pop(event_id, None)
        if day is not None:
            self.history.add_label(date.fromisoformat(day), positive)
            self._save()
