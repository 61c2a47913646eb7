"""The device simulator: real clients against a live API, some going offline for periods;
every prediction ends up on the server exactly once (server- or edge-served)."""

from __future__ import annotations

from pathlib import Path

from fatigue_guard.client.devices import DeviceSimConfig, run_devices
from fatigue_guard.simulation import CohortConfig, simulate_cohort
from tests.edge_client.conftest import RestartableApi


def test_simulated_devices_go_offline_and_everything_reaches_the_server(
    edge_api: RestartableApi, tmp_path: Path
) -> None:
    cohort = simulate_cohort(CohortConfig(users=4, days=6, seed=3))
    keys = {str(u): edge_api.key_for(str(u)) for u in cohort["user_id"].unique()}
    config = DeviceSimConfig(offline_share=0.5, offline_period=3, concurrency=2, seed=1)
    summary = run_devices(edge_api.url, cohort, keys, tmp_path, config)

    assert summary.devices == 4 and summary.offline_devices == 2
    assert summary.errors == 0 and summary.no_edge_model == 0
    assert summary.predictions == len(cohort)
    assert summary.served_by_edge > 0 and summary.served_by_server > 0
    assert summary.synced_accepted == summary.served_by_edge
    assert summary.left_in_queues == 0
    assert edge_api.count_predictions() == {
        "server": summary.served_by_server,
        "edge": summary.served_by_edge,
    }
