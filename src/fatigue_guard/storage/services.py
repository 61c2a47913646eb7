"""Data-plane operations beyond recording predictions: feedback, device keys, erasure.

Each function is one use case over a unit of work (and, for erasure, the feature store), so the
API, the CLI and the tests call the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fatigue_guard.storage.blob.feature_store import FeatureStore
from fatigue_guard.storage.keys import IssuedKey, new_key, parse_key, secret_matches
from fatigue_guard.storage.records import FeedbackRecord
from fatigue_guard.storage.sql.repository import PredictionNotFound
from fatigue_guard.storage.sql.tables import utcnow
from fatigue_guard.storage.sql.unit_of_work import UnitOfWorkFactory

__all__ = [
    "BlobErasureIncomplete",
    "Erasure",
    "ErasureCounts",
    "PredictionNotFound",
    "create_device_key",
    "erase_user",
    "record_feedback",
    "revoke_device_key",
    "verify_device_key",
]


def record_feedback(
    uow_factory: UnitOfWorkFactory, record: FeedbackRecord
) -> tuple[FeedbackRecord, bool]:
    """Store ground truth for one of ``record.user_id``'s predictions: ``(stored, created)``.

    Raises :class:`PredictionNotFound` if no such prediction belongs to that user (same error
    whether it does not exist or is someone else's). Repeats return the first report.
    """
    with uow_factory(write=True) as uow:
        stored, created = uow.feedback.add(record)
        uow.commit()
    return stored, created


def create_device_key(
    uow_factory: UnitOfWorkFactory, user_id: str, label: str | None = None
) -> IssuedKey:
    """Create a key for ``user_id``; the plaintext is in the result only, never stored."""
    key_id, plaintext, key_hash = new_key()
    with uow_factory(write=True) as uow:
        uow.devices.add(key_id, key_hash, user_id, label)
        uow.commit()
    return IssuedKey(key_id=key_id, user_id=user_id, plaintext=plaintext)


def verify_device_key(uow_factory: UnitOfWorkFactory, presented: str) -> str | None:
    """The user_id a presented key belongs to, or ``None`` if malformed, unknown or revoked."""
    parsed = parse_key(presented)
    if parsed is None:
        return None
    key_id, secret = parsed
    with uow_factory() as uow:
        device = uow.devices.get_active(key_id)
        user_id, key_hash = (device.user_id, device.key_hash) if device else (None, _NO_KEY_HASH)
    # An unknown key id is checked against a hash no secret has, so that both refusals do the
    # same work and their timing says nothing about which key ids exist.
    return user_id if secret_matches(secret, key_hash) else None


_NO_KEY_HASH = "0" * 64  # never the SHA-256 of a secret


def revoke_device_key(uow_factory: UnitOfWorkFactory, key_id: str) -> bool:
    with uow_factory(write=True) as uow:
        revoked = uow.devices.revoke(key_id)
        uow.commit()
    return revoked


@dataclass(frozen=True, slots=True)
class ErasureCounts:
    """What an erasure removed; the admin endpoint returns it as is."""

    predictions: int
    feedback: int
    outbox: int
    devices: int
    blob_records: int
    blob_files: int

    def as_dict(self) -> dict[str, int]:
        return {
            "predictions": self.predictions,
            "feedback": self.feedback,
            "outbox": self.outbox,
            "devices": self.devices,
            "blob_records": self.blob_records,
            "blob_files": self.blob_files,
        }


@dataclass(frozen=True, slots=True)
class Erasure:
    """An erasure's outcome: what it removed, and the tombstone that keeps pending copies out."""

    counts: ErasureCounts
    # Records of the user received up to this instant are dropped wherever they still wait
    # (a spool, an outbox batch in flight) when they reach SQL, the blob store or a reader.
    tombstoned_at: datetime


class BlobErasureIncomplete(RuntimeError):
    """SQL is erased and the tombstone committed, but the blob files could not all be
    rewritten: readers already drop the user's rows, and erasing again finishes the job."""

    def __init__(self, tombstoned_at: datetime) -> None:
        super().__init__("the blob feature store could not be rewritten")
        self.tombstoned_at = tombstoned_at


def erase_user(
    uow_factory: UnitOfWorkFactory, feature_store: FeatureStore, user_id: str
) -> Erasure:
    """Remove every trace of ``user_id`` from SQL and the blob feature store, and tombstone them.

    SQL goes first, in one transaction: the tombstone, then every row (outbox included), under
    the recording fence, so no concurrent insert can slip in after the delete. Then it waits for
    blob writes already under way (they may hold the user's records, read before the delete),
    and only then rewrites every Parquet file holding the user without them. Raises the
    database's error if SQL cannot be reached (nothing was erased), and
    :class:`BlobErasureIncomplete` if the blob store could not be rewritten.
    """
    with uow_factory(write=True) as uow:
        uow.tombstones.take_recording_fence(exclusive=True)
        at = utcnow()
        uow.tombstones.add(user_id, at)
        sql = uow.users.erase(user_id)
        uow.commit()
    try:
        with uow_factory() as uow:
            uow.tombstones.wait_for_blob_writers()
        blob_records, blob_files = feature_store.erase_user(user_id)
    except Exception as exc:
        raise BlobErasureIncomplete(at) from exc
    counts = ErasureCounts(
        predictions=sql["predictions"],
        feedback=sql["feedback"],
        outbox=sql["outbox"],
        devices=sql["devices"],
        blob_records=blob_records,
        blob_files=blob_files,
    )
    return Erasure(counts, at)
