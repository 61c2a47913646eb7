"""HTTP serving benchmark: our API (logging on / off) against ``mlflow models serve``.

One production model, a ``--trees``-tree forest trained on simulated data with
:func:`fatigue_guard.training.train_model` (registered as ``fatigue-rf`` version 1, alias
``production``, logged with ``pyfunc_predict_fn="predict_proba"``), served on loopback by three
child processes started together, each with ``--workers`` workers:

- ``fatigue-guard (logging on)``: ``fatigue-guard serve``, device-key auth, every prediction
  recorded durably (SQLite ``synchronous=FULL`` + outbox, group commit; or the database given
  with ``--database-url``) before it is answered;
- ``fatigue-guard (logging off)``: the same with ``FATIGUE_GUARD_RECORD_PREDICTIONS=false`` (the
  benchmark knob that exists only for this comparison);
- ``mlflow models serve -m models:/fatigue-rf/1 --env-manager local`` (its own defaults).

Load: ``wrk`` (Debian package; one thread, a Lua script that gives every request a fresh
event_id so that each one is a real insert, not an idempotent re-send) at each concurrency for
``--duration`` seconds. The servers take turns within each round, and each figure is the median
over ``--repeats`` rounds: the machine is shared, a neighbour can spoil one run. Device-key rate
limits are raised for the run (one key sends thousands of requests per second).

Then the in-process single-row latency of the same version's ONNX Runtime and scikit-learn forms,
with the timing helpers of ``benchmarks/inference.py``.

    .venv/bin/python benchmarks/serving.py [--duration 5] [--repeats 3] [--concurrency 1,8,32]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from fatigue_guard.config import Settings
from fatigue_guard.contract.baselines import BASELINE_FEATURES
from fatigue_guard.contract.features import FEATURE_NAMES
from fatigue_guard.contract.frame import feature_matrix
from fatigue_guard.demo import request_bodies
from fatigue_guard.lifecycle.registration import train_and_register
from fatigue_guard.registry.access import production_model
from fatigue_guard.simulation import CohortConfig, simulate_cohort
from fatigue_guard.storage.factory import build_storage
from servers import Target, start_server, stop_all, wait_ready

BIN = Path(sys.executable).parent
EVENT_ID_SLOT = "00000000-0000-4000-8000-000000000000"
RAW_ONLY_HELP = "requests leave the personal-baseline features out: the server computes them"


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def main() -> None:
    args = _parse()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    levels = [int(c) for c in args.concurrency.split(",")]
    home = args.home or Path(tempfile.mkdtemp(prefix="fg-serving-bench-"))
    try:
        _run(args, levels, home)
    finally:
        if args.home is None and not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)


def prepare(args: argparse.Namespace, home: Path) -> tuple[Settings, Any, Any, list[Target]]:
    """Train (or reuse) the production model in ``home``, issue a device key; the settings, the
    registered version, the simulated frame and the three servers to start."""
    settings = Settings(
        home=home,
        database_url=None,
        azure_storage_connection_string=None,
        mlflow_tracking_uri=None,
        n_estimators=args.trees,
        search_budget_s=0,
    )
    frame = simulate_cohort(CohortConfig(users=args.users, days=30, seed=args.seed))
    registered = production_model(settings) if (home / "mlflow.db").exists() else None
    if registered is None:
        say(f"training a {args.trees}-tree forest on {args.users} simulated users (HOME {home})")
        registered = train_and_register(settings, frame, seed=args.seed, n_jobs=2).registered
        assert registered is not None, "training registered no model"

    body = request_bodies(frame.iloc[-1:])[0]
    if getattr(args, "raw_only", False):
        # What a phone sends when it leaves the personal baselines to the server.
        body["features"].update(dict.fromkeys(BASELINE_FEATURES))
    storage = build_storage(settings.model_copy(update={"database_url": args.database_url}))
    storage.upgrade()
    key = storage.create_device_key(body["user_id"]).plaintext
    storage.close()
    return settings, registered, frame, _targets(args, settings, str(registered.version), body, key)


def private_database(settings: Settings, name: str) -> str:
    """A copy of the benchmark's SQLite database (device key included) for one more server.

    Servers sharing one SQLite file share one outbox: an idle server's flusher then claims and
    ships the loaded server's rows from another process, and the two meet in SQLite's busy
    handler, which put about 2.5 ms on the loaded server's p99 at concurrency 8. Each server of
    a 1-worker comparison gets a database of its own instead.
    """
    source = sqlite3.connect(settings.home_dir / "fatigue-guard.db")
    target_path = settings.home_dir / f"{name}.db"
    target_path.unlink(missing_ok=True)
    target = sqlite3.connect(target_path)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return f"sqlite:///{target_path}"


def _run(args: argparse.Namespace, levels: list[int], home: Path) -> None:
    settings, registered, frame, targets = prepare(args, home)
    processes = [_start(t, home) for t in targets]
    try:
        ready_and_warm(targets)
        results: dict[tuple[str, int], list[WrkResult]] = {}
        backlogs: list[float] = []
        for round_ in range(args.repeats):
            for c in levels:
                for target in targets:
                    say(f"round {round_ + 1}/{args.repeats}: {target.label} at concurrency {c}")
                    results.setdefault((target.label, c), []).append(
                        _wrk(target, concurrency=c, duration_s=args.duration)
                    )
                    if target is targets[0]:  # right after its load, before it can catch up
                        backlogs.append(_data_plane_gauges(target).get("fg_outbox_backlog", 0.0))
        data_plane = _data_plane_gauges(targets[0])
    finally:
        stop_all(processes)
    _print_http_table(args, targets, levels, results)
    _print_data_plane(data_plane, backlogs)
    _print_in_process(args, settings, registered, frame)


# -- servers ---------------------------------------------------------------------------------


def _targets(
    args: argparse.Namespace, settings: Settings, version: str, body: dict[str, Any], key: str
) -> list[Target]:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("FATIGUE_GUARD_")}
    base_env["MLFLOW_TRACKING_URI"] = settings.effective_mlflow_tracking_uri
    # mlflow models serve execs `uvicorn` by name: the venv's bin must be on PATH.
    base_env["PATH"] = f"{BIN}{os.pathsep}{base_env.get('PATH', '')}"
    ours_env = {
        **base_env,
        "FATIGUE_GUARD_HOME": str(settings.home_dir),
        "FATIGUE_GUARD_MONITOR_ENABLED": "false",
        # One benchmark key sends thousands of requests per second.
        "FATIGUE_GUARD_RATE_LIMIT_PER_S": "1000000",
        "FATIGUE_GUARD_RATE_LIMIT_BURST": "1000000",
    }
    if args.database_url:  # shared by both servers, as replicas would share it
        ours_env["FATIGUE_GUARD_DATABASE_URL"] = args.database_url
    off_env = {**ours_env, "FATIGUE_GUARD_RECORD_PREDICTIONS": "false"}
    if not args.database_url:
        off_env["FATIGUE_GUARD_DATABASE_URL"] = private_database(settings, "logging-off")
    ports = [args.base_port + i for i in range(3)]
    ours_lua = _ours_lua(body, key)
    workers = str(args.workers)
    serve = [str(BIN / "fatigue-guard"), "serve", "--workers", workers, "--port"]
    return [
        Target(
            "fatigue-guard (logging on)",
            [*serve, str(ports[0])],
            {**ours_env, "FATIGUE_GUARD_RECORD_PREDICTIONS": "true"},
            ports[0],
            "/readyz",
            ours_lua,
        ),
        Target(
            "fatigue-guard (logging off)",
            [*serve, str(ports[1])],
            off_env,
            ports[1],
            "/readyz",
            ours_lua,
        ),
        Target(
            "mlflow models serve",
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                f"models:/{settings.registered_model_name}/{version}",
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports[2]),
                "--workers",
                workers,
            ],
            base_env,
            ports[2],
            "/ping",
            _mlflow_lua(body),
        ),
    ]


def _start(target: Target, home: Path) -> subprocess.Popen:
    return start_server(target, home / f"{target.port}.log")


def ready_and_warm(targets: list[Target]) -> None:
    """Wait until each server answers, check its answer, and warm it up (not measured)."""
    for target in targets:
        wait_ready(target)
        _check_answer(target)
        _wrk(target, concurrency=8, duration_s=1.0)


def _check_answer(target: Target) -> None:
    """One request outside wrk, so a wrong body fails loudly instead of as fast 4xx."""
    match = re.search(r"\[==\[(.*?)\]==\]", target.lua, re.S)
    assert match is not None
    prefix = match.group(1)
    if "EVENT" in target.lua:  # ours: complete the body with a fresh event_id
        suffix = re.findall(r"\[==\[(.*?)\]==\]", target.lua, re.S)[1]
        content = prefix + str(uuid.uuid4()) + suffix
        key = re.search(r'"Bearer (.*?)"', target.lua)
        headers = {"Authorization": f"Bearer {key.group(1)}"} if key else {}
    else:
        content, headers = prefix, {}
    path = "/v1/predictions" if "EVENT" in target.lua else "/invocations"
    response = httpx.post(
        target.url + path,
        content=content,
        headers={"Content-Type": "application/json", **headers},
        timeout=30,
    )
    response.raise_for_status()
    say(f"{target.label} answers: {response.text[:160]}")


# -- load ------------------------------------------------------------------------------------


def _ours_lua(body: dict[str, Any], key: str) -> str:
    text = json.dumps({**body, "event_id": EVENT_ID_SLOT}, separators=(",", ":"))
    prefix, suffix = text.split(EVENT_ID_SLOT)
    # [==[ ]==] long strings: a body containing "]]" would otherwise end the Lua string and
    # every request would fail fast. One wrk thread, so one counter suffices.
    return f"""-- EVENT: a fresh event_id per request (each one a real insert)
local prefix = [==[{prefix}]==]
local suffix = [==[{suffix}]==]
local nonce = string.format("%08x", math.random(0, 2147483646))
local n = 0
wrk.method = "POST"
wrk.path = "/v1/predictions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
function init(args)
  nonce = args[1]
end
function request()
  n = n + 1
  local id = nonce .. "-0000-4000-8000-" .. string.format("%012x", n)
  return wrk.format(nil, nil, nil, prefix .. id .. suffix)
end
"""


def _mlflow_lua(body: dict[str, Any]) -> str:
    row = [body["features"].get(name) for name in FEATURE_NAMES]
    payload = json.dumps({"dataframe_split": {"columns": list(FEATURE_NAMES), "data": [row]}})
    return f"""local payload = [==[{payload}]==]
wrk.method = "POST"
wrk.path = "/invocations"
wrk.headers["Content-Type"] = "application/json"
wrk.body = payload
"""


def _wrk(target: Target, *, concurrency: int, duration_s: float) -> WrkResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(target.lua)
    try:
        command = [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(duration_s))}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            script.name,
            target.url,
            "--",
            uuid.uuid4().hex[:8],
        ]
        out = subprocess.run(
            command, capture_output=True, text=True, timeout=duration_s + 60, check=True
        ).stdout
    finally:
        os.unlink(script.name)
    return _parse_wrk(out)


def _parse_wrk(out: str) -> WrkResult:
    def latency(pct: str) -> float:
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        if match is None:
            return float("nan")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[match.group(2)]
        return float(match.group(1)) * scale

    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(g) for g in sockets.groups()) if sockets else 0
    return WrkResult(rps, latency("50"), latency("99"), requests, errors)


# -- report ----------------------------------------------------------------------------------


def _print_http_table(
    args: argparse.Namespace,
    targets: list[Target],
    levels: list[int],
    results: dict[tuple[str, int], list[WrkResult]],
) -> None:
    def med(label: str, c: int, field: str) -> float:
        return statistics.median(getattr(r, field) for r in results[(label, c)])

    print(
        f"\n### HTTP, loopback, {args.workers} worker(s) per server, wrk -t1, {args.duration:g} s "
        f"per run, median of {args.repeats} interleaved rounds\n"
    )
    print("| server | concurrency | requests/s | p50 (ms) | p99 (ms) | errors / requests |")
    print("|---|---:|---:|---:|---:|---:|")
    for c in levels:
        for t in targets:
            errors = sum(r.errors for r in results[(t.label, c)])
            total = sum(r.requests for r in results[(t.label, c)])
            print(
                f"| {t.label} | {c} | {med(t.label, c, 'rps'):,.0f} | "
                f"{med(t.label, c, 'p50_ms'):.2f} | {med(t.label, c, 'p99_ms'):.2f} | "
                f"{errors} / {total:,} |"
            )
    if 8 not in levels:
        return
    on, off, mlflow = (t.label for t in targets)
    p99 = med(on, 8, "p99_ms")
    speedup = med(on, 8, "rps") / med(mlflow, 8, "rps")
    kept = med(on, 8, "rps") / med(off, 8, "rps")
    print(
        f"\nTargets at concurrency 8 (logging on): p99 {p99:.2f} ms (<= 10: "
        f"{'met' if p99 <= 10 else 'NOT met'}); {speedup:.0f}x the throughput of mlflow models "
        f"serve (>= 20x: {'met' if speedup >= 20 else 'NOT met'}); logging keeps {kept:.0%} of "
        f"the bare throughput (>= 50%: {'met' if kept >= 0.5 else 'NOT met'})."
    )


def _data_plane_gauges(target: Target) -> dict[str, float]:
    """The logging server's group-commit and outbox gauges once the load is over."""
    text = httpx.get(target.url + "/metrics", timeout=10).text
    names = ("fg_group_commits", "fg_group_committed_records", "fg_outbox_backlog")
    return {
        name: float(match.group(1))
        for name in names
        if (match := re.search(rf"^{name}\s+(\S+)$", text, re.M)) is not None
    }


def _print_data_plane(gauges: dict[str, float], backlogs: list[float]) -> None:
    """Whether the outbox flusher kept up: a starved flusher makes logging look cheaper than
    it is (its work is deferred, not done), so the backlog right after each load is part of
    the result."""
    commits = gauges.get("fg_group_commits", 0.0)
    records = gauges.get("fg_group_committed_records", 0.0)
    print(
        f"\nLogging server: {records:,.0f} records in {commits:,.0f} group commits (mean group "
        f"{records / max(commits, 1):.1f}); outbox backlog right after each of its runs: at most "
        f"{max(backlogs, default=float('nan')):,.0f} records (the flusher ships a batch per "
        "500 records or per 5 s, so up to about a thousand is steady state)."
    )


def _print_in_process(
    args: argparse.Namespace, settings: Settings, registered: Any, frame: Any
) -> None:
    """Single-row latency of the served version's two forms (reusing benchmarks/inference.py)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from fatigue_guard.model.predictors import OnnxPredictor, SklearnPredictor
    from fatigue_guard.registry import load_pipeline
    from fatigue_guard.registry.access import fetch_artifacts
    from inference import _repeat  # the in-process benchmark's own timing loop

    artifacts = fetch_artifacts(settings, registered)
    assert artifacts.onnx is not None, "the registered version has no ONNX artifact"
    onnx_p = OnnxPredictor(artifacts.onnx)
    sk_p = SklearnPredictor(load_pipeline(settings, registered))
    rows = np.ascontiguousarray(feature_matrix(frame.iloc[-1000:]), dtype=np.float32)
    calls, repeats = args.calls, args.repeats
    stats = {
        "onnxruntime (served)": _repeat(onnx_p.predict_proba, rows, calls, repeats, "wall"),
        "scikit-learn predict_proba": _repeat(sk_p.predict_proba, rows, calls, repeats, "wall"),
    }
    base = stats["onnxruntime (served)"]
    print(
        f"\n### In-process single row, version {registered.version} ({args.trees} trees), "
        f"{repeats} x {calls} calls, medians\n"
    )
    print("| runtime | p50 (ms) | p99 (ms) | vs ONNX p50 |")
    print("|---|---:|---:|---:|")
    for name, s in stats.items():
        ratio = s.median_ms / base.median_ms
        print(f"| {name} | {s.median_ms:.4f} | {s.p99_ms:.4f} | {ratio:.0f}x |")


def say(message: str) -> None:
    print(f"[serving-bench] {message}", file=sys.stderr, flush=True)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=300, help="simulated users (30 days each)")
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="workers per server (all alike)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--calls", type=int, default=2000, help="in-process calls per run")
    parser.add_argument("--base-port", type=int, default=18_300)
    parser.add_argument("--raw-only", action="store_true", help=RAW_ONLY_HELP)
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary HOME")
    parser.add_argument(
        "--home", type=Path, help="HOME to use and keep; a model trained there earlier is reused"
    )
    parser.add_argument(
        "--database-url",
        help="record predictions in this (migrated here) database instead of HOME's SQLite "
        "file, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/fgbench",
    )
    return parser.parse_args()


if __name__ == "__main__":
    main()
