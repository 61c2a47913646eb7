"""Read a Fitbit export: main sleeps (with their sleep-score resting HR) and daily resting HR.

A participant is a folder holding ``fitbit/`` (the Fitbit account export, as in PMData) and, for
the default labels, ``pmsys/``. Fitbit writes sleep times as the wearer's local wall time without
an offset, so the import needs the wearer's time zone to place a night before or after a report.

What each file gives (all other files of the export are not read):

* ``fitbit/sleep.json`` (required): the sleep logs; only main sleeps describe "the last night".
* ``fitbit/sleep_score.csv`` (optional): per night, the resting heart rate Fitbit had when it
  scored that night, i.e. at wake-up.
* ``fitbit/resting_heart_rate.json`` (optional): Fitbit's daily resting heart rate. Day D's value
  is computed over day D, so it is known only once D is over.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from fatigue_guard.ingest.errors import BadFileError, MissingFileError

SLEEP_FILE: Final[str] = "fitbit/sleep.json"
SLEEP_SCORE_FILE: Final[str] = "fitbit/sleep_score.csv"
RESTING_HR_FILE: Final[str] = "fitbit/resting_heart_rate.json"

_SLEEP_FIELDS: Final[tuple[str, ...]] = (
    "logId",
    "startTime",
    "endTime",
    "minutesAsleep",
    "minutesAwake",
    "timeInBed",
    "mainSleep",
    "type",
)
_SLEEP_OPTIONAL_FIELDS: Final[tuple[str, ...]] = ("minutesToFallAsleep", "minutesAfterWakeup")
# Stage logs count each wake bout; classic logs split wakefulness into "awake" and "restless".
_AWAKENING_COUNTS: Final[dict[str, tuple[str, ...]]] = {
    "stages": ("levels.summary.wake.count",),
    "classic": ("levels.summary.awake.count", "levels.summary.restless.count"),
}
NIGHT_COLUMNS: Final[tuple[str, ...]] = (
    "user_id",
    "log_id",
    "start_local",
    "end_local",
    "start_utc",
    "end_utc",
    "night_date",
    "duration_h",
    "efficiency",
    "waso_min",
    "awakenings",
    "deep_pct",
    "rem_pct",
    "midpoint_h",
    "score_resting_hr",
)


@dataclass(frozen=True, slots=True)
class Participant:
    """One person's folder; ``name`` (the folder name) becomes ``user_id``."""

    name: str
    path: Path


def find_participants(root: Path) -> list[Participant]:
    """``root`` itself when it holds ``fitbit/``, else its sub-folders holding ``fitbit/`` or
    ``pmsys/``, sorted by name."""
    if not root.is_dir():
        raise MissingFileError("export folder not found", path=root)
    if (root / "fitbit").is_dir():
        return [Participant(root.name, root)]
    found = [
        Participant(p.name, p)
        for p in sorted(root.iterdir())
        if p.is_dir() and ((p / "fitbit").is_dir() or (p / "pmsys").is_dir())
    ]
    if not found:
        raise MissingFileError(
            "no participant folders (a folder with fitbit/, or sub-folders with fitbit/)",
            path=root,
        )
    return found


def _load_json(path: Path, participant: str, what: str, *, required: bool) -> Any:
    if not path.is_file():
        if required:
            raise MissingFileError(f"{what} not found", participant=participant, path=path)
        return None
    try:
        with path.open("rb") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadFileError(
            f"not valid JSON ({what}): {exc}", participant=participant, path=path
        ) from None


def _records(data: Any, path: Path, participant: str, what: str) -> pd.DataFrame:
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise BadFileError(
            f"expected a JSON list of objects ({what})", participant=participant, path=path
        )
    return pd.json_normalize(data) if data else pd.DataFrame()


def _numbers(frame: pd.DataFrame, columns: list[str], path: Path, participant: str) -> None:
    """Convert ``columns`` in place to float; a value that is not a number is a bad file."""
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            raise BadFileError(
                f"{column} must be a number, got {frame[column][bad].iloc[0]!r} "
                f"({int(bad.sum())} log(s))",
                participant=participant,
                path=path,
            )
        frame[column] = values.astype("float64")


def _wall_times(text: pd.Series, path: Path, participant: str, column: str) -> pd.Series:
    """Naive local timestamps; a missing, unreadable or offset-carrying time is a bad file."""
    try:
        local = pd.to_datetime(text, format="ISO8601", errors="coerce")
    except ValueError as exc:  # mixed offsets
        raise BadFileError(f"{column}: {exc}", participant=participant, path=path) from None
    if getattr(local.dt, "tz", None) is not None:
        raise BadFileError(
            f"{column} carries a UTC offset; Fitbit writes local wall time",
            participant=participant,
            path=path,
        )
    bad = local.isna()
    if bad.any():
        raise BadFileError(
            f"{column} is not a date and time: {text[bad].iloc[0]!r} ({int(bad.sum())} log(s))",
            participant=participant,
            path=path,
        )
    return local.astype("datetime64[ns]")


def read_main_sleeps(participant: Participant, timezone: str) -> tuple[pd.DataFrame, list[str]]:
    """The participant's main sleeps, one row per log (columns :data:`NIGHT_COLUMNS`), and notes
    about what was missing or skipped."""
    notes: list[str] = []
    path = participant.path / SLEEP_FILE
    data = _load_json(path, participant.name, "Fitbit sleep logs", required=True)
    logs = _records(data, path, participant.name, "Fitbit sleep logs")
    if logs.empty:
        notes.append(f"{participant.name}: {SLEEP_FILE} holds no sleep logs")
        return _empty_nights(), notes
    missing = [f for f in _SLEEP_FIELDS if f not in logs.columns]
    if missing:
        raise BadFileError(
            f"sleep logs lack field(s) {', '.join(missing)}",
            participant=participant.name,
            path=path,
        )
    for name in _SLEEP_OPTIONAL_FIELDS:
        if name not in logs.columns:
            logs[name] = 0.0
    _numbers(
        logs,
        ["minutesAsleep", "minutesAwake", "timeInBed", *_SLEEP_OPTIONAL_FIELDS],
        path,
        participant.name,
    )
    # Exports repeat some logs verbatim (PMData: a few per person); a night counts once.
    logs = logs.drop_duplicates(subset="logId", keep="first")
    main = logs["mainSleep"].astype("string").str.lower().isin(["true", "1"])
    logs = logs[main.to_numpy(dtype=bool)].reset_index(drop=True)
    if logs.empty:
        notes.append(f"{participant.name}: {SLEEP_FILE} holds no main sleep")
        return _empty_nights(), notes

    start_local = _wall_times(logs["startTime"], path, participant.name, "startTime")
    end_local = _wall_times(logs["endTime"], path, participant.name, "endTime")
    start_utc = _to_utc(start_local, timezone)
    end_utc = _to_utc(end_local, timezone)
    # A night that starts or ends in the hour a clock change repeats has no single instant.
    unplaced = (start_utc.isna() | end_utc.isna()).to_numpy(dtype=bool)
    if unplaced.any():
        notes.append(
            f"{participant.name}: {int(unplaced.sum())} main sleep(s) at an ambiguous local time "
            "(clock change) skipped"
        )

    asleep = logs["minutesAsleep"]
    in_bed = logs["timeInBed"].where(logs["timeInBed"] > 0)
    kind = logs["type"].astype("string")
    night_date = end_local.dt.normalize()
    nights = pd.DataFrame(
        {
            "user_id": participant.name,
            "log_id": logs["logId"].astype("string"),
            "start_local": start_local,
            "end_local": end_local,
            "start_utc": start_utc,
            "end_utc": end_utc,
            "night_date": night_date,
            "duration_h": asleep / 60.0,
            "efficiency": asleep / in_bed,
            # minutesAwake covers all wake time in bed; onset latency and the time after the
            # final awakening are not "after sleep onset".
            "waso_min": (
                logs["minutesAwake"] - logs["minutesToFallAsleep"] - logs["minutesAfterWakeup"]
            ).clip(lower=0.0),
            "awakenings": _awakenings(logs, kind),
            "deep_pct": _stage_share(logs, kind, "deep", asleep),
            "rem_pct": _stage_share(logs, kind, "rem", asleep),
            # Hours after midnight of the day the sleep ends (a 23:00-07:00 night: 3.0).
            "midpoint_h": ((start_local - night_date) + (end_local - night_date)).dt.total_seconds()
            / 7200.0,
        }
    )
    nights = nights[~unplaced].reset_index(drop=True)
    scores, score_notes = _sleep_score_resting_hr(participant)
    notes.extend(score_notes)
    nights["score_resting_hr"] = nights["log_id"].map(scores).astype("float64")
    return nights[list(NIGHT_COLUMNS)], notes


def _to_utc(local: pd.Series, timezone: str) -> pd.Series:
    # A wall time skipped by a clock change (02:30 on the spring-forward night) is the instant
    # just after the gap, where the device's clock landed.
    placed = local.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="shift_forward")
    return placed.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")


def _awakenings(logs: pd.DataFrame, kind: pd.Series) -> pd.Series:
    out = pd.Series(np.nan, index=logs.index, dtype="float64")
    for log_type, columns in _AWAKENING_COUNTS.items():
        if not all(c in logs.columns for c in columns):
            continue
        counts = sum(pd.to_numeric(logs[c], errors="coerce") for c in columns)
        mask = (kind == log_type).to_numpy(dtype=bool)
        out[mask] = counts[mask]
    return out


def _stage_share(logs: pd.DataFrame, kind: pd.Series, stage: str, asleep: pd.Series) -> pd.Series:
    """Percent of sleep in ``stage``; classic logs have no stages, so they stay missing."""
    column = f"levels.summary.{stage}.minutes"
    if column not in logs.columns:
        return pd.Series(np.nan, index=logs.index, dtype="float64")
    minutes = pd.to_numeric(logs[column], errors="coerce")
    share = 100.0 * minutes / asleep.where(asleep > 0)
    return share.where((kind == "stages").to_numpy(dtype=bool)).astype("float64")


def _sleep_score_resting_hr(participant: Participant) -> tuple[pd.Series, list[str]]:
    """``logId`` -> the resting HR of that night's sleep score (empty when there is no file)."""
    path = participant.path / SLEEP_SCORE_FILE
    if not path.is_file():
        return pd.Series(dtype="float64"), [f"{participant.name}: {SLEEP_SCORE_FILE} not found"]
    try:
        frame = pd.read_csv(path, dtype="string")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BadFileError(
            f"cannot be read as CSV (Fitbit sleep scores): {exc}",
            participant=participant.name,
            path=path,
        ) from None
    needed = ["sleep_log_entry_id", "resting_heart_rate"]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise BadFileError(
            f"column(s) {', '.join(missing)} missing (Fitbit sleep scores)",
            participant=participant.name,
            path=path,
        )
    bpm = pd.to_numeric(frame["resting_heart_rate"], errors="coerce")
    # Fitbit writes 0 when it had no resting heart rate.
    bpm = bpm.where(bpm > 0)
    ids = frame["sleep_log_entry_id"].astype("string").str.strip()
    keep = (bpm.notna() & ids.notna()).to_numpy(dtype=bool)
    scores = pd.Series(bpm[keep].to_numpy(dtype="float64"), index=ids[keep].to_numpy())
    return scores[~scores.index.duplicated(keep="first")], []


def read_daily_resting_hr(participant: Participant) -> tuple[pd.DataFrame, list[str]]:
    """Daily resting HR: ``user_id, date`` (local calendar day, naive) ``, resting_hr``."""
    path = participant.path / RESTING_HR_FILE
    data = _load_json(path, participant.name, "Fitbit resting heart rate", required=False)
    empty = pd.DataFrame(
        {
            "user_id": pd.Series(dtype="string"),
            "date": pd.Series(dtype="datetime64[ns]"),
            "resting_hr": pd.Series(dtype="float64"),
        }
    )
    if data is None:
        return empty, [f"{participant.name}: {RESTING_HR_FILE} not found"]
    days = _records(data, path, participant.name, "Fitbit resting heart rate")
    if days.empty:
        return empty, [f"{participant.name}: {RESTING_HR_FILE} holds no days"]
    if "dateTime" not in days.columns or "value.value" not in days.columns:
        raise BadFileError(
            "expected entries {dateTime, value: {value: bpm}} (Fitbit resting heart rate)",
            participant=participant.name,
            path=path,
        )
    date = pd.to_datetime(days["dateTime"], format="ISO8601", errors="coerce")
    bad = date.isna()
    if bad.any():
        raise BadFileError(
            f"dateTime is not a date: {days['dateTime'][bad].iloc[0]!r}",
            participant=participant.name,
            path=path,
        )
    bpm = pd.to_numeric(days["value.value"], errors="coerce")
    # Fitbit writes 0 for a day without a resting heart rate.
    bpm = bpm.where(bpm > 0)
    out = pd.DataFrame(
        {
            "user_id": participant.name,
            "date": date.dt.tz_localize(None).dt.normalize().astype("datetime64[ns]"),
            "resting_hr": bpm.astype("float64"),
        }
    ).dropna(subset=["resting_hr"])
    return out.drop_duplicates(subset="date", keep="last").reset_index(drop=True), []


def _empty_nights() -> pd.DataFrame:
    frame = pd.DataFrame({name: pd.Series(dtype="float64") for name in NIGHT_COLUMNS})
    frame["user_id"] = frame["user_id"].astype("string")
    frame["log_id"] = frame["log_id"].astype("string")
    for name in ("start_local", "end_local", "night_date"):
        frame[name] = frame[name].astype("datetime64[ns]")
    for name in ("start_utc", "end_utc"):
        frame[name] = pd.Series(dtype="datetime64[ns, UTC]")
    return frame
