"""Read the live dataset back for training and monitoring.

Features and served predictions come from the blob feature store (server and edge alike);
labels come from SQL feedback. Rows of erased users (see
:mod:`~fatigue_guard.storage.sql.tombstones`) never come out. The result is in the contract's
table format, ready for the training and drift code: ID columns, features in contract order, the
served prediction, and ``fatigue_event`` (nullable: most predictions never get feedback).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from fatigue_guard.contract.features import FEATURES_VERSION, LABEL_COLUMN
from fatigue_guard.storage.blob.feature_store import FeatureStore
from fatigue_guard.storage.sql.tombstones import erased_user_hash
from fatigue_guard.storage.sql.unit_of_work import UnitOfWorkFactory


def read_live_dataset(
    feature_store: FeatureStore,
    uow_factory: UnitOfWorkFactory,
    start: datetime,
    end: datetime,
    *,
    features_version: int = FEATURES_VERSION,
    labelled_only: bool = False,
) -> pd.DataFrame:
    """Every prediction measured in ``[start, end)``, one row per event_id, with its label.

    ``start``/``end`` must be timezone-aware. ``labelled_only`` keeps rows with feedback only
    (live precision/recall, retraining).
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    frame = feature_store.read(start, end, features_version).to_pandas()
    with uow_factory() as uow:
        labels = uow.feedback.labels_for_window(start, end)
        erased = uow.tombstones.erased_at(frame["user_id"].unique()) if len(frame) else {}
    if erased:
        # A file rewritten by an erasure never holds the user; this drops rows of one that an
        # erasure could not finish (the blob store failed half-way), until it is run again.
        erased_at = frame["user_id"].map(lambda user: erased.get(erased_user_hash(user)))
        covered_rows = erased_at.notna() & (frame["received_at"] <= erased_at)
        frame = frame[~covered_rows].reset_index(drop=True)
    by_id = {str(event_id): label for event_id, label in labels.items()}
    frame[LABEL_COLUMN] = pd.array(
        [by_id.get(event_id) for event_id in frame["event_id"]], dtype="boolean"
    )
    if labelled_only:
        frame = frame[frame[LABEL_COLUMN].notna()].reset_index(drop=True)
    return frame
