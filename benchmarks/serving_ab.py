"""Two configurations of the logging API, served side by side in interleaved rounds.

The machine is shared and its speed drifts by a quarter within an hour, so comparing two runs made
minutes apart says little. This starts the logging server of ``benchmarks/serving.py`` twice, on
the same model and key (each with its own copy of the database), once with the ``--a`` and once
with the ``--b`` environment overrides (``NAME=VALUE``, repeatable), and runs ``wrk`` against
each in turn, round after round. The side-by-side figures in ``docs/benchmarks.md`` come from it,
e.g. the recorder process against the in-process recorder::

    .venv/bin/python benchmarks/serving_ab.py --b FATIGUE_GUARD_RECORDER_PROCESS=false

``--a-bin``/``--b-bin`` run a variant from another checkout's virtualenv (the folder holding its
``fatigue-guard``), so two versions of the code are compared in one run, e.g. main before and
after a change::

    git worktree add /tmp/before main && make -C /tmp/before .venv/.installed
    .venv/bin/python benchmarks/serving_ab.py --a-bin /tmp/before/.venv/bin
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from fatigue_guard.config import Settings
from servers import stop_all
from serving import (
    RAW_ONLY_HELP,
    WrkResult,
    _start,
    _wrk,
    prepare,
    private_database,
    ready_and_warm,
)


def main() -> None:
    args = _parse()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    home = args.home or Path(tempfile.mkdtemp(prefix="fg-serving-ab-"))
    try:
        settings, _, _, targets = prepare(args, home)
        logging_on = targets[0]
        variants = [
            dataclasses.replace(
                logging_on,
                label=f"{name}: {' '.join(overrides) or 'defaults'}"
                + (f" ({bin_dir})" if bin_dir else ""),
                command=[
                    *_from_bin(logging_on.command[:-1], bin_dir),
                    str(logging_on.port + i),
                ],
                env={
                    **logging_on.env,
                    **_own_database(args, settings, name),
                    **dict(o.split("=", 1) for o in overrides),
                },
                port=logging_on.port + i,
            )
            for i, (name, overrides, bin_dir) in enumerate(
                (("A", args.a, args.a_bin), ("B", args.b, args.b_bin))
            )
        ]
        results = _run(args, variants, home)
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    print(
        f"\n### Side by side, concurrency {args.concurrency}, {args.duration:g} s per run, "
        f"median of {args.repeats} interleaved rounds\n"
    )
    print("| variant | requests/s | p50 (ms) | p99 (ms) | errors / requests | rounds (req/s) |")
    print("|---|---:|---:|---:|---:|---|")
    for label, runs in results.items():
        rps = [r.rps for r in runs]
        print(
            f"| {label} | {statistics.median(rps):,.0f} | "
            f"{statistics.median(r.p50_ms for r in runs):.2f} | "
            f"{statistics.median(r.p99_ms for r in runs):.2f} | "
            f"{sum(r.errors for r in runs)} / {sum(r.requests for r in runs):,} | "
            f"{', '.join(f'{x:,.0f}' for x in rps)} |"
        )


def _from_bin(command: list[str], bin_dir: Path | None) -> list[str]:
    """``command`` with its executable taken from ``bin_dir`` (another checkout's venv)."""
    if bin_dir is None:
        return command
    return [str(bin_dir / Path(command[0]).name), *command[1:]]


def _own_database(args: argparse.Namespace, settings: Settings, name: str) -> dict[str, str]:
    """Each variant records into a database of its own (see ``serving.private_database``)."""
    if args.database_url:
        return {}
    return {"FATIGUE_GUARD_DATABASE_URL": private_database(settings, f"variant-{name}")}


def _run(args: argparse.Namespace, variants: list, home: Path) -> dict[str, list[WrkResult]]:
    processes = [_start(v, home) for v in variants]
    try:
        ready_and_warm(variants)
        results: dict[str, list[WrkResult]] = {v.label: [] for v in variants}
        for _ in range(args.repeats):
            for variant in variants:
                results[variant.label].append(
                    _wrk(variant, concurrency=args.concurrency, duration_s=args.duration)
                )
        return results
    finally:
        stop_all(processes)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--b", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--a-bin", type=Path, help="venv bin folder of another checkout for A")
    parser.add_argument("--b-bin", type=Path, help="venv bin folder of another checkout for B")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--users", type=int, default=300, help="simulated users (30 days each)")
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--base-port", type=int, default=18_500)
    parser.add_argument("--raw-only", action="store_true", help=RAW_ONLY_HELP)
    parser.add_argument("--database-url")
    parser.add_argument("--home", type=Path, help="HOME to use and keep")
    return parser.parse_args()


if __name__ == "__main__":
    main()
