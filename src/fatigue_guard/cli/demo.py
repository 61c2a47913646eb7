"""``fatigue-guard demo``: the whole loop once, on embedded defaults (what `make demo` runs).

``--quick`` is the short version: train, serve, 2,000 predictions, a table.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from fatigue_guard.demo.loop import LoopResult, Phase
    from fatigue_guard.demo.quick import QuickSummary

console = Console()

SCENARIO_HELP = (
    "Drift scenario of the simulator: hrv_population_shift (an older cohort joins), "
    "device_firmware, seasonal_sleep, concept_shift, label_shift, none."
)


def demo(
    quick: Annotated[
        bool, typer.Option("--quick", help="Only train, serve and send 2,000 predictions.")
    ] = False,
    scenario: Annotated[str, typer.Option(help=SCENARIO_HELP)] = "hrv_population_shift",
    keep_running: Annotated[
        bool,
        typer.Option("--keep-running", help="Leave the API and its dashboard up until Ctrl-C."),
    ] = False,
    users: Annotated[
        int | None,
        typer.Option(min=50, help="Simulated people before the drift [default: 240; quick 1200]."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, help="Simulation and training seed [default: 1; quick 7].")
    ] = None,
    search_budget_s: Annotated[
        float | None,
        typer.Option(min=0.0, help="Hyperparameter search budget [default: 0 s; quick 20 s]."),
    ] = None,
    days: Annotated[int, typer.Option(min=14, help="--quick: simulated days per user.")] = 30,
    requests: Annotated[int, typer.Option(min=1, help="--quick: predictions sent.")] = 2000,
) -> None:
    """The whole loop: baseline -> API -> phones -> drift -> monitor -> retraining -> gate ->
    promotion -> hot swap under live traffic -> edge refresh -> precision against the floor.

    Exit code 1 when a phase did not show what it should (the red lines say which).
    """
    from fatigue_guard.config import get_settings

    if quick:
        budget = 20.0 if search_budget_s is None else search_budget_s
        _quick(users or 1200, days, requests, 7 if seed is None else seed, budget)
        return

    from fatigue_guard.demo.loop import run_loop
    from fatigue_guard.demo.timeline import LoopConfig
    from fatigue_guard.simulation import SCENARIOS

    if scenario not in SCENARIOS:
        raise typer.BadParameter(f"one of {', '.join(SCENARIOS)}", param_hint="--scenario")
    sizes: dict[str, float] = {}
    if seed is not None:
        sizes["seed"] = seed
    if users is not None:
        sizes["users"] = users
    if search_budget_s is not None:
        sizes["search_budget_s"] = search_budget_s
    config = LoopConfig(scenario=scenario, **sizes)  # type: ignore[arg-type]

    started = time.perf_counter()
    shown = RichPhases(console)

    def hold(result: LoopResult) -> None:
        shown.stop()
        _print_result(result, time.perf_counter() - started)
        if keep_running:
            _wait_for_ctrl_c(result)

    console.print(
        f"[bold]fatigue-guard demo[/]: the whole loop on embedded defaults, scenario "
        f"[bold]{scenario}[/] ({SCENARIOS[scenario]})"
    )
    with shown, _interrupted_by_sigterm():
        result = run_loop(config, get_settings(), shown, hold=hold)
    if not keep_running:
        console.print(
            "The API has stopped. [bold]fatigue-guard demo --keep-running[/] leaves it (and "
            "the dashboard) up until Ctrl-C."
        )
    if not all(p.ok for p in result.phases):
        raise typer.Exit(1)


class RichPhases:
    """One spinner with the running phase and its elapsed time; one line per finished phase."""

    def __init__(self, out: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            TimeElapsedColumn(),
            console=out,
            transient=True,
            # The loop sends library output to its log file itself; a second redirection here
            # would be undone out of order when the display stops before the loop ends.
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._task: object | None = None

    def __enter__(self) -> RichPhases:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.progress.stop()

    def begin(self, title: str) -> None:
        self._drop()
        self._task = self.progress.add_task(title)

    def end(self, phase: Phase) -> None:
        self._drop()
        mark = "[green]✓[/]" if phase.ok else "[bold red]✗[/]"
        outcome = phase.outcome if phase.ok else f"[bold red]{phase.outcome}[/]"
        self.progress.console.print(
            f"{mark} [bold]{phase.title:<12}[/] {phase.seconds:6.1f} s  {outcome}",
            highlight=False,
        )

    def _drop(self) -> None:
        if self._task is not None:
            self.progress.remove_task(self._task)  # type: ignore[arg-type]
            self._task = None


def _print_result(result: LoopResult, seconds: float) -> None:
    from fatigue_guard.demo.loop import holdout_text
    from fatigue_guard.simulation import SCENARIOS

    floor = result.floor
    table = Table(title=f"fatigue-guard demo: the whole loop ({seconds:.0f} s)", show_lines=True)
    table.add_column("what")
    table.add_column("value")

    def red_unless(ok: bool, text: str) -> str:
        return text if ok else f"[bold red]{text}[/]"

    scenario = result.config.scenario
    table.add_row("scenario", f"{scenario}: {SCENARIOS[scenario]}")
    versions = f"v{result.baseline_version} (baseline)"
    if result.promoted:
        versions += f" -> v{result.production_version} (retrained, production)"
    elif result.new_version:
        versions += f"; v{result.new_version} {result.retrain_status}, v1 still serves"
    table.add_row("model versions", red_unless(result.promoted, versions))
    if result.baseline_holdout is not None:
        table.add_row(
            f"held-out days, v{result.baseline_version} (trained without them)",
            red_unless(result.baseline_holds, holdout_text(result)),
        )
    if result.finding is not None:
        named = "\n".join(result.finding.named[:6]) or "nothing"
        verdict = "as the scenario predicts" if result.finding.matches else "NOT the scenario"
        table.add_row(
            "what the monitor found",
            red_unless(result.finding.matches, f"{named}\n({verdict})"),
        )
    if result.retrain_status is not None:
        table.add_row(
            "retraining -> gate",
            red_unless(result.promoted, f"{result.retrain_status}: {result.retrain_reason}"),
        )
    for key, label in (
        ("normal", f"before the drift, v{result.baseline_version}"),
        ("drift", f"drifted traffic, v{result.baseline_version}"),
        ("after", f"drifted traffic after the swap, v{result.production_version}"),
    ):
        q = result.quality.get(key)
        if q is None:
            continue
        ok = q.precision is not None and q.precision >= floor
        text = f"{q.text()}  {'>=' if ok else 'BELOW the'} floor {floor:.2f}"
        table.add_row(f"precision / recall: {label}", red_unless(ok, text))
    if result.latency_ms is not None:
        p50, p99 = result.latency_ms
        text = f"{p50:.1f} / {p99:.1f}"
        if result.live_latency_ms is not None:
            live50, live99 = result.live_latency_ms
            text += f"  (during retraining and the swap: {live50:.1f} / {live99:.1f})"
        table.add_row("latency p50 / p99 (ms, at the phone)", text)
    if result.swap_seconds is not None:
        table.add_row(
            "hot swap",
            red_unless(
                result.stale_after_swap == 0,
                f"first v{result.production_version} answer {result.swap_seconds:.1f} s after "
                f"the alias moved; {result.stale_after_swap} answers from the old version after",
            ),
        )
    before, after = result.edge_versions
    if result.refreshes:
        table.add_row(
            "edge bundle on the phones",
            f"v{', v'.join(sorted(str(v) for v in before))} -> "
            f"v{', v'.join(sorted(str(v) for v in after))} on {len(result.refreshes)} phones",
        )
    edge = sum(t.edge_answers for t in result.traffic.values())
    synced = sum(t.synced for t in result.traffic.values())
    answers = sum(len(t.answers) for t in result.traffic.values())
    table.add_row(
        "phones",
        f"{answers:,} moments, {edge:,} of them on the edge model while offline, {synced:,} "
        f"synced later; {sum(t.feedback for t in result.traffic.values()):,} feedback reports",
    )
    table.add_row(
        "records stored: SQL / blob",
        red_unless(
            result.stored_sql == result.stored_blob,
            f"{result.stored_sql:,} / {result.stored_blob:,}",
        ),
    )
    failed = result.failed_requests
    errors = "n/a" if result.server_errors is None else str(result.server_errors)
    table.add_row(
        "failed requests",
        red_unless(failed == 0 and not result.server_errors, f"{failed} (server 5xx: {errors})"),
    )
    table.add_row("phase times (s)", ", ".join(f"{p.title} {p.seconds:.1f}" for p in result.phases))
    console.print(table)

    if result.baseline_holdout is not None and not result.baseline_holds:
        console.print(
            f"[bold red]The baseline v{result.baseline_version} does not keep its precision "
            f"floor on the days its training held out: {holdout_text(result)}.[/]",
            highlight=False,
        )
    after_q = result.quality.get("after")
    if result.precision_back and result.promoted:
        console.print(f"[green]Precision is back at the floor {floor:.2f}.[/]")
    elif result.precision_back:
        console.print(
            f"[bold red]Precision is at or above the floor {floor:.2f}, but on "
            f"v{result.production_version}: the loop promoted no new version.[/]"
        )
    elif after_q is not None and after_q.precision is not None:
        console.print(
            f"[bold red]Precision after the loop is {after_q.precision:.2f}: BELOW the floor "
            f"{floor:.2f}.[/]"
        )
    else:
        console.print("[bold red]Precision after the loop could not be measured (no alerts).[/]")
    console.print(
        f"State is in {result.home} (logs: demo.log, serve.log). Dashboard: "
        f"{result.dashboard_url}  sign in with the admin token [bold]{result.admin_token}[/]"
    )


@contextlib.contextmanager
def _interrupted_by_sigterm() -> Iterator[None]:
    """SIGTERM stops the demo as Ctrl-C does: the API child process is stopped, not orphaned."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_quick(summary: QuickSummary, seconds: float) -> None:
    """The quick demo's table; a row under its floor is red, and said in a sentence below."""
    table = Table(title=f"fatigue-guard demo --quick ({seconds:.0f} s)")
    table.add_column("what")
    table.add_column("value", justify="right")
    for key, value in summary.rows.items():
        table.add_row(key, f"[bold red]{value}[/]" if key in summary.alarms else value)
    console.print(table)
    for sentence in summary.alarms.values():
        console.print(f"[bold red]{sentence}[/]", highlight=False)


def _wait_for_ctrl_c(result: LoopResult) -> None:
    console.print(
        f"[bold]The API is up at {result.base_url}[/] with the dashboard; Ctrl-C stops it."
    )
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopping the API")


def _quick(users: int, days: int, requests: int, seed: int, search_budget_s: float) -> None:
    from fatigue_guard.config import get_settings
    from fatigue_guard.demo.quick import QuickConfig, run_quick

    started = time.perf_counter()
    config = QuickConfig(
        users=users, days=days, requests=requests, seed=seed, search_budget_s=search_budget_s
    )
    with console.status("starting") as status:

        def say(message: str) -> None:
            status.update(message)
            console.log(message)

        summary = run_quick(config, get_settings(), say)
    _print_quick(summary, time.perf_counter() - started)
    console.print(
        f"State is in {summary.home}; inspect it with "
        f"FATIGUE_GUARD_HOME={summary.home} fatigue-guard models"
    )
