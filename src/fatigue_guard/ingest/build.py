"""Fitbit export + fatigue reports -> a contract-format table, one row per person-day.

A row stands at the moment of the day's report (``measured_at``) and holds only what was known
then:

* the last main sleep that had **ended** before the report (none in the previous 24 h: no row;
  a report made while a logged sleep was still going on: no row, that night was not over);
* resting heart rate of the day **before** (Fitbit computes day D's value over day D), or, when
  that day has none, the value Fitbit had when it scored the last night, at wake-up;
* personal baselines from earlier days only, as :mod:`fatigue_guard.contract.baselines` defines
  them for every caller (the overnight ones anchored on the night's date, the report rate on the
  report's date).

Features the export does not measure stay missing (HRV, steps, heart rate of the last hour,
sleep-onset latency): the contract allows it, and a made-up value would teach the model a
tracker that does not exist. Reports become rows only once; every report that does not is
counted under the rule that stopped it, and rows breaking the contract are reported by rule.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from fatigue_guard.contract.baselines import (
    DayCalendar,
    Moments,
    personal_baselines,
)
from fatigue_guard.contract.features import (
    FEATURE_NAMES,
    FEATURES_VERSION,
    ID_COLUMNS,
    LABEL_COLUMN,
)
from fatigue_guard.contract.frame import FrameReport, coerce_feature_columns, validate_frame
from fatigue_guard.ingest.calendar import Calendar
from fatigue_guard.ingest.errors import IngestError
from fatigue_guard.ingest.fitbit import (
    Participant,
    find_participants,
    read_daily_resting_hr,
    read_main_sleeps,
)
from fatigue_guard.ingest.labels import (
    DEFAULT_LABEL_COLUMN,
    DEFAULT_LABEL_RULE,
    PMSYS_SCALES,
    LabelRule,
    read_label_csv,
    read_pmsys_wellness,
)

# The feature definitions below are those of this contract version; a new version must be
# checked against them before the importer claims to produce it.
TARGET_FEATURES_VERSION: Final[int] = 1
# A main sleep that ended longer ago than this is not "last night": that night was not recorded.
MAX_HOURS_SINCE_WAKE: Final[float] = 24.0
# Features a Fitbit export like PMData's cannot give: written as missing.
NOT_IN_EXPORT: Final[tuple[str, ...]] = (
    "hrv_rmssd_ms",
    "hrv_rmssd_ratio",
    "hr_last_hour_bpm",
    "steps_24h",
    "sleep_latency_min",
)
_HOUR: Final[pd.Timedelta] = pd.Timedelta(hours=1)
_DAY: Final[pd.Timedelta] = pd.Timedelta(days=1)
REJECTED_REASON_COLUMN: Final[str] = "rejected_because"


@dataclass
class Exclusion:
    """Reports that did not become rows, for one reason."""

    reason: str
    rows: int
    examples: list[dict[str, object]]


@dataclass
class ImportResult:
    """The contract-format ``table`` (valid rows only) and an account of everything else."""

    table: pd.DataFrame
    rejected: pd.DataFrame  # every report that is not a row, with ``rejected_because``
    exclusions: list[Exclusion]  # the importer's own rules, in the order they apply
    contract: FrameReport  # the feature contract, on the rows the importer built
    summary: pd.DataFrame  # per participant: reports, rows, events, excluded
    notes: list[str] = field(default_factory=list)  # optional files missing, skipped logs
    label_rule: str = DEFAULT_LABEL_RULE

    @property
    def rows(self) -> int:
        return len(self.table)


def _check_timezone(timezone: str) -> None:
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise IngestError(
            f"unknown time zone {timezone!r} (use an IANA name such as Europe/Oslo)"
        ) from None


def import_fitbit(
    root: Path | str,
    *,
    timezone: str,
    labels: Path | str | None = None,
    user_column: str = "user",
    time_column: str = "time",
    label_column: str = DEFAULT_LABEL_COLUMN,
    label_rule: LabelRule | str = DEFAULT_LABEL_RULE,
) -> ImportResult:
    """Import the participants under ``root`` (see :func:`~fatigue_guard.ingest.fitbit.
    find_participants`) with their PMSys reports, or with the reports of ``labels``.

    ``timezone`` is the wearers' IANA zone (Fitbit sleep times are local wall time).
    Raises :class:`~fatigue_guard.ingest.errors.IngestError` for a missing or unreadable file
    and when no row at all can be built.
    """
    if FEATURES_VERSION != TARGET_FEATURES_VERSION:
        raise IngestError(
            f"the importer builds feature contract v{TARGET_FEATURES_VERSION}, "
            f"the contract is v{FEATURES_VERSION}"
        )
    _check_timezone(timezone)
    rule = label_rule if isinstance(label_rule, LabelRule) else LabelRule.parse(label_rule)
    root = Path(root)
    participants = find_participants(root)
    notes: list[str] = []
    nights, daily_hr, reports = [], [], []
    for person in participants:
        person_nights, person_notes = read_main_sleeps(person, timezone)
        person_hr, hr_notes = read_daily_resting_hr(person)
        nights.append(person_nights)
        daily_hr.append(person_hr)
        notes += person_notes + hr_notes
        if labels is None:
            reports.append(read_pmsys_wellness(person.path, person.name, label_column))
    if labels is not None:
        reports = [
            read_label_csv(
                Path(labels),
                user_column=user_column,
                time_column=time_column,
                label_column=label_column,
                timezone=timezone,
            )
        ]
    scale = PMSYS_SCALES.get(label_column) if labels is None else None
    return _assemble(
        participants,
        _concat(nights),
        _concat(daily_hr),
        _concat(reports),
        rule,
        timezone,
        label_column,
        scale,
        notes,
    )


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)] or frames[:1]
    out = pd.concat(frames, ignore_index=True)
    out["user_id"] = out["user_id"].astype("string")
    return out


class _Outcome:
    """The first rule that stops each report, in the order the rules are applied."""

    def __init__(self, n: int) -> None:
        self.code = np.full(n, -1, dtype=np.int64)  # -1: still becoming a row
        self.order: list[str] = []

    @property
    def open(self) -> np.ndarray:
        return self.code < 0

    def exclude(self, mask: np.ndarray, reason: str) -> None:
        hit = np.asarray(mask, dtype=bool) & self.open
        if hit.any():
            self.code[hit] = len(self.order)
            self.order.append(reason)

    def reasons(self, mask: np.ndarray) -> np.ndarray:
        return np.asarray(self.order, dtype=object)[self.code[mask]]


def _assemble(
    participants: list[Participant],
    nights: pd.DataFrame,
    daily_hr: pd.DataFrame,
    reports: pd.DataFrame,
    rule: LabelRule,
    timezone: str,
    label_column: str,
    scale: tuple[int, int] | None,
    notes: list[str],
) -> ImportResult:
    reports = reports.sort_values(["user_id", "reported_at"], kind="mergesort", na_position="first")
    reports = reports.reset_index(drop=True)
    outcome = _Outcome(len(reports))
    reported_at = reports["reported_at"]
    local = reported_at.dt.tz_convert(timezone)
    reports["date"] = local.dt.tz_localize(None).dt.normalize().astype("datetime64[ns]")
    score = reports["score"].to_numpy(dtype="float64")

    outcome.exclude(reported_at.isna().to_numpy(), "report time missing or unreadable")
    outcome.exclude(np.isnan(score), f"{label_column} missing or not a number")
    if scale is not None:
        lo, hi = scale
        with np.errstate(invalid="ignore"):
            off_scale = (score < lo) | (score > hi) | (np.floor(score) != score)
        outcome.exclude(off_scale, f"{label_column} not on the PMSys scale {lo}-{hi}")
    # Among the reports still in play: a re-sent or late second report of a day does not make a
    # second person-day.
    candidates = reports[outcome.open]
    first_of_day = np.zeros(len(reports), dtype=bool)
    first_of_day[candidates.index] = ~candidates.duplicated(["user_id", "date"], keep="first")
    outcome.exclude(~first_of_day, "a second report on the same local day (the first is kept)")
    labelled = outcome.open.copy()  # the reports that count for the recent fatigue rate
    known_users = {p.name for p in participants}
    outcome.exclude(
        ~reports["user_id"].isin(known_users).to_numpy(dtype=bool),
        "no Fitbit export folder for this user",
    )

    events = rule.apply(reports["score"])
    night = _match_nights(reports, nights, outcome)

    calendar = Calendar.spanning(
        reports.loc[labelled, ["user_id", "date"]],
        nights.rename(columns={"night_date": "date"}),
        daily_hr.assign(date=daily_hr["date"] + _DAY),
    )
    days = _day_calendar(calendar, nights, daily_hr, reports[labelled], events[labelled])

    keep = outcome.open
    rows = reports[keep].reset_index(drop=True)
    night = night[keep].reset_index(drop=True)
    table = _features(rows, night, calendar, days, daily_hr, timezone)
    table[LABEL_COLUMN] = events[keep].to_numpy(dtype=bool)
    table = table[[*ID_COLUMNS, *FEATURE_NAMES, LABEL_COLUMN]]

    coerced = coerce_feature_columns(table)
    contract = validate_frame(coerced)
    valid = contract.valid
    exclusions = _exclusions(reports, outcome)
    rejected = _rejected(reports, outcome, table, valid)
    written = table[valid].reset_index(drop=True)
    if written.empty:
        reasons = "; ".join(f"{e.reason}: {e.rows}" for e in exclusions)
        raise IngestError(
            f"{len(reports)} reports, no row could be built"
            + (f" ({reasons})" if reasons else "")
            + (f"; {contract.summary()}" if contract.invalid_rows else "")
        )
    summary = _summary(participants, reports, outcome, table, valid)
    return ImportResult(
        table=written,
        rejected=rejected,
        exclusions=exclusions,
        contract=contract,
        summary=summary,
        notes=notes,
        label_rule=str(rule),
    )


def _match_nights(reports: pd.DataFrame, nights: pd.DataFrame, outcome: _Outcome) -> pd.DataFrame:
    """For each report, the last main sleep that ended before it (NaN columns where none)."""
    open_rows = outcome.open
    left = reports.loc[open_rows, ["user_id", "reported_at"]].assign(_row=reports.index[open_rows])
    left = left.sort_values("reported_at", kind="mergesort")
    sleeps = nights.sort_values("start_utc", kind="mergesort")
    # The latest sleep that had begun by the report: still going on means the night was not over.
    begun = pd.merge_asof(
        left,
        sleeps[["user_id", "start_utc", "end_utc"]],
        left_on="reported_at",
        right_on="start_utc",
        by="user_id",
        direction="backward",
    )
    in_sleep = np.zeros(len(reports), dtype=bool)
    in_sleep[begun["_row"].to_numpy()] = (begun["end_utc"] > begun["reported_at"]).to_numpy(
        dtype=bool, na_value=False
    )
    outcome.exclude(in_sleep, "made before the night's sleep log ended")

    ended = pd.merge_asof(
        left,
        nights.sort_values("end_utc", kind="mergesort"),
        left_on="reported_at",
        right_on="end_utc",
        by="user_id",
        direction="backward",
        tolerance=pd.Timedelta(hours=MAX_HOURS_SINCE_WAKE),
    )
    matched = ended.set_index("_row").reindex(reports.index)
    outcome.exclude(
        matched["end_utc"].isna().to_numpy(),
        f"no main sleep ended in the {MAX_HOURS_SINCE_WAKE:g} h before the report",
    )
    return matched


def _day_calendar(
    calendar: Calendar,
    nights: pd.DataFrame,
    daily_hr: pd.DataFrame,
    labelled: pd.DataFrame,
    events: pd.Series,
) -> DayCalendar:
    """What each calendar day contributes to the baselines of later days."""
    # Two main sleeps can end on one date; the longer one stands for that night in baselines.
    nightly = nights.sort_values(["duration_h", "end_utc"], kind="mergesort").drop_duplicates(
        ["user_id", "night_date"], keep="last"
    )
    u, d = nightly["user_id"], nightly["night_date"]
    # Resting HR known on the morning of day D: day D-1's daily value, else the one Fitbit had
    # when it scored the night that ended on D.
    known_hr = calendar.place(daily_hr["user_id"], daily_hr["date"] + _DAY, daily_hr["resting_hr"])
    scored_hr = calendar.place(u, d, nightly["score_resting_hr"])
    positive = calendar.place(
        labelled["user_id"], labelled["date"], events.astype("float64").to_numpy()
    )
    return DayCalendar(
        first_row=calendar.first_row,
        sleep_h=calendar.place(u, d, nightly["duration_h"]),
        midpoint_h=calendar.place(u, d, nightly["midpoint_h"]),
        resting_hr_bpm=np.where(np.isnan(known_hr), scored_hr, known_hr),
        hrv_rmssd_ms=np.full(len(calendar), np.nan),  # not in the export
        reports=np.where(np.isnan(positive), 0.0, 1.0),
        positives=np.nan_to_num(positive),
    )


def _features(
    rows: pd.DataFrame,
    night: pd.DataFrame,
    calendar: Calendar,
    days: DayCalendar,
    daily_hr: pd.DataFrame,
    timezone: str,
) -> pd.DataFrame:
    by_night = calendar.positions(rows["user_id"], night["night_date"])
    by_day = calendar.positions(rows["user_id"], rows["date"])

    day_before = rows[["user_id"]].assign(date=rows["date"] - _DAY)
    resting_hr = day_before.merge(
        daily_hr.astype({"date": "datetime64[ns]"}), on=["user_id", "date"], how="left"
    )["resting_hr"].to_numpy(dtype="float64")
    resting_hr = np.where(
        np.isnan(resting_hr), night["score_resting_hr"].to_numpy(dtype="float64"), resting_hr
    )

    duration = night["duration_h"].to_numpy(dtype="float64")
    local = rows["reported_at"].dt.tz_convert(timezone)
    since_midnight = local - local.dt.normalize()
    features = {
        "sleep_duration_h": duration,
        "sleep_efficiency": night["efficiency"].to_numpy(dtype="float64"),
        "resting_hr_bpm": resting_hr,
        "hours_awake": ((rows["reported_at"] - night["end_utc"]) / _HOUR).to_numpy(dtype="float64"),
        "local_hour": (since_midnight / _HOUR).to_numpy(dtype="float64"),
        "waso_min": night["waso_min"].to_numpy(dtype="float64"),
        "awakenings": night["awakenings"].to_numpy(dtype="float64"),
        "deep_sleep_pct": night["deep_pct"].to_numpy(dtype="float64"),
        "rem_sleep_pct": night["rem_pct"].to_numpy(dtype="float64"),
    }
    # Every row has a matched night and a report date on the calendar.
    features.update(
        personal_baselines(
            days,
            Moments(
                night_row=by_night,
                date_row=by_day,
                sleep_h=duration,
                midpoint_h=night["midpoint_h"].to_numpy(dtype="float64"),
                resting_hr_bpm=resting_hr,
                hrv_rmssd_ms=np.full(len(rows), np.nan),
                sleep_goal_h=np.full(len(rows), np.nan),  # an export knows no sleep goal
            ),
        )
    )
    table = pd.DataFrame(
        {
            "event_id": event_ids(rows["user_id"], rows["reported_at"]),
            "user_id": rows["user_id"].astype("string"),
            "measured_at": rows["reported_at"].astype("datetime64[ns, UTC]"),
        }
    )
    for name in FEATURE_NAMES:
        table[name] = features.get(name, np.full(len(rows), np.nan))
    return table


_HEX: Final[np.ndarray] = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def event_ids(users: pd.Series, instants: pd.Series) -> np.ndarray:
    """Deterministic UUID-shaped ids from ``(user, instant)``: a re-import gives the same ids,
    so the rows stay one event each wherever they are merged. Vectorised (two 64-bit hashes)."""
    keys = pd.DataFrame(
        {
            "user": users.astype("string").to_numpy(),
            "at": instants.dt.tz_convert("UTC")
            .dt.tz_localize(None)
            .astype("datetime64[ns]")
            .to_numpy()
            .view("int64"),
        }
    )
    halves = [
        pd.util.hash_pandas_object(keys, index=False, hash_key=key).to_numpy(dtype=np.uint64)
        for key in ("fatigue-guard-id", "fitbit-import-id")
    ]
    raw = np.stack(halves, axis=1).astype(">u8").view(np.uint8).reshape(len(keys), 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x80  # version 8: an application-defined UUID
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    digits = np.empty((len(keys), 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX[raw >> 4]
    digits[:, 1::2] = _HEX[raw & 0x0F]
    dash = np.full((len(keys), 1), ord("-"), dtype=np.uint8)
    parts = np.split(digits, (8, 12, 16, 20), axis=1)
    text = np.concatenate(
        [parts[0], dash, parts[1], dash, parts[2], dash, parts[3], dash, parts[4]], axis=1
    )
    return np.ascontiguousarray(text).view("S36").ravel().astype(str)


def _examples(reports: pd.DataFrame, mask: np.ndarray, n: int = 3) -> list[dict[str, object]]:
    sample = reports.loc[mask, ["user_id", "raw_time", "raw_score"]].head(n)
    return [
        {k: (None if pd.isna(v) else str(v)) for k, v in r.items()}
        for r in sample.to_dict(orient="records")
    ]


def _exclusions(reports: pd.DataFrame, outcome: _Outcome) -> list[Exclusion]:
    out = []
    for code, reason in enumerate(outcome.order):
        mask = outcome.code == code
        out.append(Exclusion(reason, int(mask.sum()), _examples(reports, mask)))
    return out


def _rejected(
    reports: pd.DataFrame, outcome: _Outcome, table: pd.DataFrame, valid: np.ndarray
) -> pd.DataFrame:
    stopped = ~outcome.open
    early = pd.DataFrame(
        {
            "user_id": reports.loc[stopped, "user_id"].astype("string"),
            "measured_at": reports.loc[stopped, "reported_at"],
            "reported_time": reports.loc[stopped, "raw_time"],
            "reported_score": reports.loc[stopped, "raw_score"],
            REJECTED_REASON_COLUMN: outcome.reasons(stopped),
        }
    )
    late = table[~valid].assign(**{REJECTED_REASON_COLUMN: "breaks the feature contract"})
    out = pd.concat([early, late], ignore_index=True)
    return out.sort_values(["user_id", "measured_at"], kind="mergesort").reset_index(drop=True)


def _summary(
    participants: list[Participant],
    reports: pd.DataFrame,
    outcome: _Outcome,
    table: pd.DataFrame,
    valid: np.ndarray,
) -> pd.DataFrame:
    names = sorted({p.name for p in participants} | set(reports["user_id"].dropna()))
    index = pd.Index(names, name="participant", dtype="string")
    written = table[valid]
    summary = pd.DataFrame(
        {
            "reports": reports.groupby("user_id").size(),
            "rows": written.groupby("user_id").size(),
            "events": written.groupby("user_id")[LABEL_COLUMN].sum(),
            "excluded": reports[~outcome.open].groupby("user_id").size(),
            "contract_invalid": table[~valid].groupby("user_id").size(),
        }
    ).reindex(index)
    return summary.fillna(0).astype("int64")
