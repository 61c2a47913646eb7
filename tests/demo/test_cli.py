"""``fatigue-guard demo`` through typer: how the loop's result is shown (with a stand-in loop,
so these run in a second), the refused scenario, and the ``--quick`` path end to end."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from fatigue_guard.cli import demo as cli_demo
from fatigue_guard.cli.demo import demo
from fatigue_guard.config import Settings, get_settings
from fatigue_guard.demo import loop
from fatigue_guard.demo.finding import Finding
from fatigue_guard.demo.loop import LoopResult, Phase, Progress
from fatigue_guard.demo.measures import Quality
from fatigue_guard.demo.phones import Refresh, Traffic
from fatigue_guard.demo.quick import QuickSummary
from fatigue_guard.demo.timeline import LoopConfig


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(demo)
    return app


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("FATIGUE_GUARD_HOME", str(tmp_path))
    # Wide enough that no table cell wraps the phrases looked for.
    monkeypatch.setattr(cli_demo, "console", Console(width=240))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _result(
    home: Path, after_precision: float, holdout: tuple[float, float] = (0.8, 0.3)
) -> LoopResult:
    hits = round(after_precision * 100)
    return LoopResult(
        config=LoopConfig(),
        home=home / "demo",
        base_url="http://127.0.0.1:8123",
        admin_token="the-demo-token",
        floor=0.75,
        phases=[Phase("baseline", "v1 trained", 9.0), Phase("after", "v2 answered", 20.0)],
        baseline_version="1",
        baseline_holdout=holdout,
        new_version="2",
        promoted=True,
        production_version="2",
        retrain_status="promoted",
        retrain_reason="precision 0.80 >= floor 0.75",
        finding=Finding(
            "hrv_population_shift",
            True,
            ["hrv_rmssd_ms drifted (population-wide)"],
            frozenset({"hrv_rmssd_ms"}),
        ),
        swap_seconds=1.5,
        refreshes=[Refresh("u1", "1", "2", "updated")],
        traffic={"after": Traffic("after", phones=1)},
        quality={"after": Quality(400, 100, 120, after_precision, 0.3, (hits / 120, 0.9))},
        latency_ms=(12.0, 60.0),
        stored_sql=400,
        stored_blob=400,
        answered_or_synced=400,
        server_errors=0,
    )


def _stand_in(result: LoopResult, *, failed_phase: bool = False) -> Callable[..., LoopResult]:
    def run_loop(
        config: LoopConfig,
        base: Settings,
        progress: Progress,
        *,
        hold: Callable[[LoopResult], None] | None = None,
    ) -> LoopResult:
        assert config.scenario == "device_firmware" and config.users == 90
        for phase in result.phases:
            progress.begin(phase.title)
            progress.end(phase)
        if failed_phase:
            result.phases.append(Phase("after", "precision BELOW the floor", 1.0, ok=False))
        if hold is not None:
            hold(result)
        return result

    return run_loop


def _invoke(*args: str) -> tuple[int, str]:
    outcome = CliRunner().invoke(_app(), list(args))
    return outcome.exit_code, re.sub(r"\s+", " ", outcome.output)


def test_the_table_names_versions_monitor_finding_precision_and_how_to_sign_in(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop, "run_loop", _stand_in(_result(home, 0.8)))
    code, out = _invoke("--scenario", "device_firmware", "--users", "90")
    assert code == 0, out
    assert "v1 (baseline) -> v2 (retrained, production)" in out
    assert "hrv_rmssd_ms drifted (population-wide)" in out
    assert "Precision is back at the floor 0.75" in out
    assert "held-out precision 0.800 / recall 0.300 (floor 0.75)" in out
    assert "does not keep its precision floor" not in out
    assert "http://127.0.0.1:8123/dashboard" in out and "the-demo-token" in out
    assert "--keep-running" in out  # how to keep the dashboard up


def test_precision_below_the_floor_is_said_plainly_and_fails_the_command(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop, "run_loop", _stand_in(_result(home, 0.6), failed_phase=True))
    code, out = _invoke("--scenario", "device_firmware", "--users", "90")
    assert code == 1
    assert "Precision after the loop is 0.60: BELOW the floor 0.75" in out


def _red(out: str, phrase: str) -> bool:
    """``phrase`` is printed inside a bold red span."""
    return re.search(r"\x1b\[1;31m[^\x1b]*" + re.escape(phrase), out) is not None


def test_held_out_precision_under_the_floor_is_red_with_a_sentence(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_demo, "console", Console(width=240, force_terminal=True))
    monkeypatch.setattr(loop, "run_loop", _stand_in(_result(home, 0.8, holdout=(0.7496, 0.3))))
    _, out = _invoke("--scenario", "device_firmware", "--users", "90")
    # Rounded down, never up to the floor; red in the table and in a plain sentence below it.
    assert _red(out, "held-out precision 0.749 is BELOW the floor 0.75")
    assert _red(out, "The baseline v1 does not keep its precision floor on the days its training")


def test_quick_table_shows_held_out_precision_under_the_floor_in_red(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = Console(width=240, force_terminal=True, record=True)
    monkeypatch.setattr(cli_demo, "console", shown)
    summary = QuickSummary(
        home=home,
        rows={"precision floor": "0.75", "held-out precision at threshold": "0.735 is BELOW"},
        alarms={"held-out precision at threshold": "Held-out precision 0.735 is BELOW the floor"},
    )
    cli_demo._print_quick(summary, 1.0)
    out = shown.export_text(styles=True)
    assert _red(out, "0.735 is BELOW")
    assert _red(out, "Held-out precision 0.735 is BELOW the floor")
    assert not _red(out, "0.75")


def test_an_unknown_scenario_is_refused() -> None:
    code, out = _invoke("--scenario", "bogus")
    assert code == 2 and "hrv_population_shift" in out


@pytest.mark.slow
def test_quick_trains_serves_and_counts_every_record(home: Path) -> None:
    code, out = _invoke(
        "--quick", "--users", "150", "--days", "21", "--requests", "300", "--search-budget-s", "0"
    )
    assert code == 0, out
    assert "fatigue-rf v1 (production)" in out
    assert "requests / errors │ 300 / 0" in out
    assert "rows in SQL DB / blob store │ 300 / 300" in out
    assert (home / "demo" / "demo.log").exists()  # library chatter went to the log
