"""The importer's rules, read plainly: one report at a time, in plain Python, from the files.

Slow and obvious on purpose: the vectorised importer is checked against it row by row.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from statistics import mean
from zoneinfo import ZoneInfo

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Night:
    start: datetime
    end: datetime
    log_id: str
    hours: float
    midpoint: float  # hours after midnight of the day it ends
    scored_hr: float | None


def _nights(person: Path, zone: ZoneInfo) -> list[Night]:
    nights, seen = [], set()
    for log in json.loads((person / "fitbit/sleep.json").read_text()):
        if not log["mainSleep"] or log["logId"] in seen:
            continue
        seen.add(log["logId"])
        start, end = (datetime.fromisoformat(log[k]) for k in ("startTime", "endTime"))
        midnight = datetime.combine(end.date(), datetime.min.time())
        midpoint = ((start - midnight) + (end - midnight)).total_seconds() / 7200
        nights.append(
            Night(
                start.replace(tzinfo=zone),
                end.replace(tzinfo=zone),
                str(log["logId"]),
                log["minutesAsleep"] / 60,
                midpoint,
                None,
            )
        )
    with (person / "fitbit/sleep_score.csv").open() as fh:
        scored = {
            r["sleep_log_entry_id"]: float(r["resting_heart_rate"]) for r in csv.DictReader(fh)
        }
    return [
        Night(n.start, n.end, n.log_id, n.hours, n.midpoint, scored.get(n.log_id) or None)
        for n in nights
    ]


def reference_rows(person: Path, timezone: str) -> dict[datetime, dict[str, float | None]]:
    """Report instant (UTC) -> the row's label and the features that need a rule."""
    zone = ZoneInfo(timezone)
    nights = _nights(person, zone)
    by_day: dict[date, Night] = {}
    for n in sorted(nights, key=lambda n: (n.hours, n.end)):
        by_day[n.end.date()] = n  # the longest night of a date stands for it
    daily: dict[date, float] = {}
    hr_file = person / "fitbit/resting_heart_rate.json"
    if hr_file.exists():
        for day in json.loads(hr_file.read_text()):
            if day["value"]["value"] > 0:
                daily[date.fromisoformat(day["dateTime"][:10])] = day["value"]["value"]

    def morning_hr(day: date) -> float | None:
        if day - ONE_DAY in daily:
            return daily[day - ONE_DAY]
        night = by_day.get(day)
        return night.scored_hr if night else None

    with (person / "pmsys/wellness.csv").open() as fh:
        reports = sorted(
            (datetime.fromisoformat(r["effective_time_frame"].replace("Z", "+00:00")), r["fatigue"])
            for r in csv.DictReader(fh)
        )
    labelled: dict[date, tuple[datetime, bool]] = {}
    for at, fatigue in reports:
        day = at.astimezone(zone).date()
        if fatigue.isdigit() and 1 <= int(fatigue) <= 5 and day not in labelled:
            labelled[day] = (at, int(fatigue) <= 2)

    rows: dict[datetime, dict[str, float | None]] = {}
    for day, (at, event) in labelled.items():
        if any(n.start <= at < n.end for n in nights):
            continue
        ended = [n for n in nights if n.end <= at]
        if not ended:
            continue
        night = max(ended, key=lambda n: n.end)
        if at - night.end > timedelta(hours=24):
            continue
        resting_hr = daily.get(day - ONE_DAY, night.scored_hr)
        if resting_hr is None:
            continue
        ends = night.end.date()

        def before(first: date, days: int, values: dict) -> list:
            return [
                values[first - k * ONE_DAY]
                for k in range(1, days + 1)
                if first - k * ONE_DAY in values
            ]

        midpoints = before(ends, 14, {d: n.midpoint for d, n in by_day.items()})
        need = before(ends, 28, {d: n.hours for d, n in by_day.items()})
        week = before(ends, 6, {d: n.hours for d, n in by_day.items()})
        # Overnight measures are compared on the night's date, as every baseline of the night.
        mornings = before(ends, 14, {d: morning_hr(d) for d in _days_around(ends) if morning_hr(d)})
        earlier = before(day, 14, {d: e for d, (_, e) in labelled.items()})
        rows[at] = {
            "fatigue_event": event,
            "sleep_duration_h": night.hours,
            "resting_hr_bpm": resting_hr,
            "hours_awake": (at - night.end).total_seconds() / 3600,
            "sleep_midpoint_shift_h": (
                (night.midpoint - mean(midpoints) + 12) % 24 - 12 if len(midpoints) >= 3 else None
            ),
            "sleep_debt_7d_h": (
                7 * (mean(need) - (sum(week) + night.hours) / (len(week) + 1))
                if len(need) >= 3
                else None
            ),
            "resting_hr_delta_bpm": resting_hr - mean(mornings) if len(mornings) >= 3 else None,
            "recent_fatigue_rate_14d": mean(earlier) if len(earlier) >= 3 else None,
        }
    return rows


def _days_around(day: date) -> list[date]:
    return [day - k * ONE_DAY for k in range(15)]
