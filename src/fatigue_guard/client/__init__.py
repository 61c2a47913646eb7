"""The reference client: offline-first, the library the mobile team ports.

>>> from fatigue_guard.client import FatigueClient
>>> client = FatigueClient("https://api.example", "fgk_...", "./device", user_id="u-1")
>>> client.refresh_model()            # fetch the edge model while online
>>> client.predict(features, measured_at)   # server, or on-device when offline (queued)
>>> client.sync()                     # upload what was predicted offline

Modules: :mod:`.client` (the four calls), :mod:`.api` (HTTP, what counts as offline),
:mod:`.queue` (durable SQLite outbox), :mod:`.model_store` (verified model swap),
:mod:`.backoff`, :mod:`.results`, :mod:`.devices` (the device simulator built on it).
"""

from fatigue_guard.client.api import ApiError, Unreachable
from fatigue_guard.client.backoff import Backoff
from fatigue_guard.client.client import EdgeModelUnavailable, FatigueClient, InvalidFeatures
from fatigue_guard.client.model_store import ModelRefused
from fatigue_guard.client.queue import QueueCounts
from fatigue_guard.client.results import Prediction, RefreshResult, SyncReport

__all__ = [
    "ApiError",
    "Backoff",
    "EdgeModelUnavailable",
    "FatigueClient",
    "InvalidFeatures",
    "ModelRefused",
    "Prediction",
    "QueueCounts",
    "RefreshResult",
    "SyncReport",
    "Unreachable",
]
