"""In-process inference latency: ONNX Runtime fast path vs scikit-learn ``predict_proba``.

The in-process half of the latency benchmarks (``benchmarks/serving.py`` is the HTTP half): the
same 200-tree forest, trained on simulated data, answers single rows through
:class:`OnnxPredictor` (one intra-op thread) and :class:`SklearnPredictor` (``n_jobs=1``). Every
call is timed on its own; each figure is the median over ``--repeats`` runs of ``--calls`` calls
(the machine is shared, a single run can be spoiled by a neighbour). Target: ONNX >= 50x faster
per row. With ``--edge`` it also builds the edge model and prints its budget (5 MB, 1 ms p99)
and recall at the precision floor next to the full model's.

    .venv/bin/python benchmarks/inference.py [--users 300] [--calls 2000] [--edge]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from fatigue_guard.contract.frame import feature_matrix
from fatigue_guard.edge.latency import Clock, LatencyStats, time_calls
from fatigue_guard.model.onnx_export import export_onnx
from fatigue_guard.model.pipeline import build_pipeline
from fatigue_guard.model.predictors import OnnxPredictor, SklearnPredictor
from fatigue_guard.model.threshold import NoThresholdMeetsFloor, select_threshold
from fatigue_guard.simulation import CohortConfig, simulate_cohort


def main() -> None:
    args = _parse()
    frame = simulate_cohort(CohortConfig(users=args.users, days=30, seed=args.seed))
    users = frame["user_id"].unique()
    train = frame["user_id"].isin(users[: int(len(users) * 0.7)]).to_numpy()
    X = feature_matrix(frame)
    y = frame["fatigue_event"].to_numpy().astype(int)
    X_train, y_train, X_val, y_val = X[train], y[train], X[~train], y[~train]

    started = time.perf_counter()
    pipeline = build_pipeline(n_estimators=args.trees, seed=args.seed, n_jobs=2)
    pipeline.fit(X_train, y_train)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    onnx_bytes = export_onnx(pipeline)
    export_s = time.perf_counter() - started

    onnx_p = OnnxPredictor(onnx_bytes)
    sk_p = SklearnPredictor(pipeline)
    onnx_p.warm_up()
    sk_p.warm_up()
    rows = np.ascontiguousarray(X_val[:1000])
    predictors = {"onnxruntime": onnx_p.predict_proba, "scikit-learn": sk_p.predict_proba}
    single = {n: _repeat(f, rows, args.calls, args.repeats, "wall") for n, f in predictors.items()}
    cpu = {n: _repeat(f, rows, args.calls, args.repeats, "cpu") for n, f in predictors.items()}
    batch = {
        "onnxruntime": _batch_ms(onnx_p.predict_proba, rows, args.repeats * 5),
        "scikit-learn": _batch_ms(sk_p.predict_proba, rows, args.repeats * 5),
    }
    diff = float(np.max(np.abs(onnx_p.predict_proba(X_val) - sk_p.predict_proba(X_val))))
    depth = max(t.get_depth() for t in pipeline.steps[-1][1].estimators_)

    print(
        f"\n{args.trees}-tree forest (max depth {depth}), {len(X_train)} training rows from "
        f"{len(users)} simulated users; fit {fit_s:.1f} s, ONNX export {export_s:.1f} s, "
        f"ONNX {len(onnx_bytes) / 1e6:.2f} MB; max |ONNX - sklearn| on {len(X_val)} rows = "
        f"{diff:.1e}\n"
    )
    print(
        "| runtime | single row p50 (ms) | single row p99 (ms) | CPU p50 (ms) | CPU p99 (ms) "
        "| batch of 1,000 (ms) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name in single:
        w, c = single[name], cpu[name]
        print(
            f"| {name} | {w.median_ms:.4f} | {w.p99_ms:.4f} | {c.median_ms:.4f} | {c.p99_ms:.4f} "
            f"| {batch[name]:.2f} |"
        )
    ratios = [
        _ratio(single, "median_ms"),
        _ratio(single, "p99_ms"),
        _ratio(cpu, "median_ms"),
        _ratio(cpu, "p99_ms"),
        batch["scikit-learn"] / batch["onnxruntime"],
    ]
    print("| **speed-up** | " + " | ".join(f"**{r:.0f}x**" for r in ratios) + " |")
    print(
        f"\nSingle row: {args.repeats} runs x {args.calls} calls per runtime and clock, each call "
        f"timed alone, medians over runs (wall = what a request waits, CPU = this thread's CPU "
        f"time, immune to neighbours on a shared machine). Batch: median of {args.repeats * 5} "
        f"calls. Target single-row speed-up >= 50x (p50 wall): "
        f"{'met' if ratios[0] >= 50 else 'NOT met'}."
    )
    if args.edge:
        _edge_report(pipeline, onnx_bytes, X_train, y_train, X_val, y_val)


def _edge_report(
    pipeline: object,
    onnx_bytes: bytes,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
) -> None:
    from fatigue_guard.edge.compact import build_edge_model

    floor = 0.75
    scores = OnnxPredictor(onnx_bytes).predict_proba(X_val)
    try:
        threshold = select_threshold(y_val, scores, floor).threshold
    except NoThresholdMeetsFloor as exc:
        print(f"\nedge model skipped: {exc}")
        return
    started = time.perf_counter()
    edge = build_edge_model(
        pipeline,  # type: ignore[arg-type]
        X_train,
        y_train,
        X_val,
        y_val,
        threshold=threshold,
        precision_floor=floor,
        full_onnx=onnx_bytes,
    )
    took = time.perf_counter() - started
    print(f"\nEdge model: kind={edge.kind}, built in {took:.0f} s (budget 5 MB, 1 ms p99 CPU)\n")
    print("| candidate | trees | depth | size (MB) | p99 CPU (ms) | recall @ precision 0.75 |")
    print("|---|---:|---:|---:|---:|---:|")
    for c in edge.candidates:
        mark = " (shipped)" if c.size_bytes == edge.size_bytes else ""
        print(
            f"| {c.label}{mark} | {c.n_estimators} | {c.max_depth} | {c.size_bytes / 1e6:.2f} "
            f"| {c.p99_ms:.3f} | {c.recall_at_floor:.3f} |"
        )
    m = edge.metrics
    print(
        f"\nrecall at the floor on {len(y_val)} validation rows: "
        f"full {m['full_recall_at_floor']:.3f}, edge {m['edge_recall_at_floor']:.3f} "
        f"(cost {m['recall_at_floor_cost']:+.3f}); "
        f"thresholds: full {m['full_threshold']:.4f}, edge {m['edge_threshold']:.4f} "
        f"(edge recall {m['edge_recall_at_threshold']:.3f} at precision "
        f"{m['edge_precision_at_threshold']:.3f})"
    )


def _ratio(stats: dict[str, LatencyStats], field: str) -> float:
    return getattr(stats["scikit-learn"], field) / getattr(stats["onnxruntime"], field)


def _repeat(
    call: Callable[[np.ndarray], object],
    rows: np.ndarray,
    calls: int,
    repeats: int,
    clock: Clock,
) -> LatencyStats:
    runs = [time_calls(call, rows, calls=calls, clock=clock) for _ in range(repeats)]
    return LatencyStats(
        calls=calls * repeats,
        median_ms=float(np.median([r.median_ms for r in runs])),
        p99_ms=float(np.median([r.p99_ms for r in runs])),
        mean_ms=float(np.median([r.mean_ms for r in runs])),
    )


def _batch_ms(call: Callable[[np.ndarray], object], rows: np.ndarray, repeats: int) -> float:
    call(rows)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        call(rows)
        samples.append((time.perf_counter_ns() - started) / 1e6)
    return float(np.median(samples))


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=300, help="simulated users (30 days each)")
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--calls", type=int, default=2000, help="single-row calls per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--edge", action="store_true", help="also build and report the edge model")
    return parser.parse_args()


if __name__ == "__main__":
    main()
