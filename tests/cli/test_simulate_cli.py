"""``fatigue-guard simulate`` end to end, through typer, writing a real Parquet file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from typer.testing import CliRunner

from fatigue_guard.cli.simulate import simulate
from fatigue_guard.contract.tables import read_table
from fatigue_guard.simulation import CohortConfig, simulate_cohort


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(simulate)
    return app


def test_simulate_writes_a_readable_contract_table(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "cohort.parquet"
    args = ["--users", "15", "--days", "6", "--seed", "4", "--scenario", "label_shift"]
    result = CliRunner().invoke(_app(), [*args, "--drift-start", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "rows" in result.output and "prevalence" in result.output
    table = read_table(out)
    expected = simulate_cohort(
        CohortConfig(users=15, days=6, seed=4, scenario="label_shift", drift_start=3)
    )
    pd.testing.assert_frame_equal(table, expected)


def test_simulate_refuses_an_unknown_scenario(tmp_path: Path) -> None:
    out = tmp_path / "x.parquet"
    result = CliRunner().invoke(_app(), ["--scenario", "bogus", "--out", str(out)])
    assert result.exit_code != 0
    assert not out.exists()
