"""What a running API process holds, and the FastAPI dependency that hands it to routes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request

from fatigue_guard.config import Settings
from fatigue_guard.serving.metrics import ApiMetrics
from fatigue_guard.serving.model_slot import ModelSlot
from fatigue_guard.serving.personal_baselines import PersonalBaselines
from fatigue_guard.serving.shutdown import Shutdown
from fatigue_guard.serving.thresholds import VersionThresholds
from fatigue_guard.storage.sql.personal_history import PersonalHistoryStore

if TYPE_CHECKING:
    from fatigue_guard.serving.auth import AuthServices
    from fatigue_guard.storage.factory import Storage
    from fatigue_guard.storage.recording.protocol import Recorder


@dataclass
class ServingState:
    settings: Settings
    models: ModelSlot = field(default_factory=ModelSlot)
    metrics: ApiMetrics = field(default_factory=ApiMetrics)
    storage: Storage | None = None
    auth: AuthServices | None = None
    monitoring: Any = None  # serving.app._Monitoring once started (scheduler + retrainer)
    edge_thresholds: VersionThresholds = field(init=False)
    shutdown: Shutdown = field(init=False)
    _personal_baselines: PersonalBaselines | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.shutdown = Shutdown(self.settings.shutdown_grace_s)
        self.edge_thresholds = VersionThresholds(self.settings, self.models)

    @property
    def personal_baselines(self) -> PersonalBaselines:
        """The per-person histories the API fills left-out baselines from (built on first use)."""
        if self._personal_baselines is None:
            assert self.storage is not None, "storage is set during the app's start-up"
            self._personal_baselines = PersonalBaselines(
                PersonalHistoryStore(self.storage.uow_factory),
                ttl_s=self.settings.baseline_cache_ttl_s,
                max_people=self.settings.baseline_cache_people,
                enabled=self.settings.server_baselines,
            )
        return self._personal_baselines

    def close_personal_baselines(self) -> None:
        """Write the history still queued (shutdown); nothing to do if none was used."""
        if self._personal_baselines is not None:
            self._personal_baselines.close()

    @property
    def recorder(self) -> Recorder:
        assert self.storage is not None, "storage is set during the app's start-up"
        return self.storage.recorder


def get_state(request: Request) -> ServingState:
    return request.app.state.serving
