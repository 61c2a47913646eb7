"""Soak: the API at a fixed request rate for minutes, with PostgreSQL and Azure Blob behind it.

Starts its own stores (a fresh PostgreSQL database on 127.0.0.1:5432, a private Azurite reached
through a TCP proxy), trains or reuses the production model of ``benchmarks/serving.py`` and
starts one ``fatigue-guard serve --log-level info`` (access log in a file next to the results).
Then it sends ``--rate`` predictions a second, open loop (:mod:`open_loop`), each with a fresh
event_id, for ``--minutes``, and samples the RSS and CPU of the API's process tree (API, recorder
and shipper processes) with its outbox backlog every ``--sample-s`` seconds.

Reported per minute: requests, errors (non-2xx and requests without an answer), p50/p99
latency, the client's own lateness, the server's CPU, its RSS and outbox backlog, and the
machine's load average (the machine is shared). Then: RSS growth from the end of the warm-up to
the end of the load (target under 10 %), and, once the load has stopped, whether the outbox
drains: every answered event_id counted in the ``predictions`` table and in the Parquet batches
of the blob container, with duplicates.

``--blob-outage`` makes Azurite unreachable for ``--outage-s`` seconds in the middle of the run
(the proxy stops: connections refused; ``--outage-mode blackhole``: accepted, never answered):
answers must not fail or slow down, since features wait in the outbox, which must drain after.

The stores come from the test fixtures' classes (``tests/fixtures/services.py``), imported rather
than copied: the soak needs exactly their Azurite process and fault-injecting proxy.

    .venv/bin/python benchmarks/soak.py --minutes 10 [--rate 150] [--blob-outage]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import psycopg
from psycopg import sql
from pydantic import SecretStr
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.*

from tests.fixtures.services import (
    POSTGRES_ADMIN_DSN,
    AzuriteService,
    TcpProxy,
    azurite_executable,
    free_port,
)

from fatigue_guard.demo import request_bodies
from fatigue_guard.storage.factory import Storage, build_storage
from open_loop import Outcome, Request, run_open_loop
from process_tree import ProcessTree, Reading, TreeSample
from servers import Target, start_server, stop_all, wait_ready
from serving import EVENT_ID_SLOT, prepare

MB = 1024 * 1024
GROWTH_TARGET = 0.10


@dataclass(frozen=True)
class Sample:
    """One look at the server during the load."""

    t_s: float  # since the load started
    tree: TreeSample
    backlog: float | None  # fg_outbox_backlog; None if /metrics did not answer
    flush_failures: float | None
    load_1m: float


@dataclass
class Outage:
    mode: str
    start_s: float
    end_s: float
    began_at: float | None = None  # seconds since the load started, as it happened
    ended_at: float | None = None


def main() -> None:
    args = _parse()
    # A stopped run still removes its database, Azurite and server (the finally blocks).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    args.out.mkdir(parents=True, exist_ok=True)
    executable = azurite_executable()
    if executable is None:
        sys.exit("azurite-blob not found: run `npm ci` at the repository root")
    home = args.home or Path(tempfile.mkdtemp(prefix="fg-soak-"))
    database = f"fg_soak_{uuid.uuid4().hex[:10]}"
    azurite = AzuriteService(executable, Path(tempfile.mkdtemp(prefix="fg-soak-azurite-")))
    proxy: TcpProxy | None = None
    _create_database(database)
    try:
        azurite.start()
        proxy = TcpProxy("127.0.0.1", azurite.port)
        proxy.start()
        result = _soak(
            args, home, f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}", azurite, proxy
        )
    finally:
        if proxy is not None:
            proxy.stop()
        azurite.stop()
        shutil.rmtree(azurite.location, ignore_errors=True)
        if not args.keep_database:
            _drop_database(database)
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    name = "soak-blob-outage" if args.blob_outage else "soak"
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2))
    markdown = _markdown(result)
    (args.out / f"{name}.md").write_text(markdown)
    print(markdown)
    say(f"results in {args.out / name}.json and .md, server log in {result['server_log']}")


def _soak(
    args: argparse.Namespace,
    home: Path,
    database_url: str,
    azurite: AzuriteService,
    proxy: TcpProxy,
) -> dict[str, Any]:
    prepare_args = argparse.Namespace(
        users=args.users,
        trees=args.trees,
        seed=args.seed,
        workers=args.workers,
        base_port=free_port(),
        database_url=database_url,
    )
    settings, _, frame, targets = prepare(prepare_args, home)
    container = f"soak{uuid.uuid4().hex[:12]}"
    through_proxy = azurite.connection_string.replace(f":{azurite.port}/", f":{proxy.port}/")
    logging_on = targets[0]
    target = dataclasses.replace(
        logging_on,
        label="fatigue-guard serve (PostgreSQL, Azurite, access log)",
        command=[*logging_on.command, "--log-level", "info"],
        env={
            **logging_on.env,
            "FATIGUE_GUARD_AZURE_STORAGE_CONNECTION_STRING": through_proxy,
            "FATIGUE_GUARD_BLOB_CONTAINER": container,
        },
    )
    # The benchmark reads the stores directly (not through the proxy) to count what arrived.
    storage = build_storage(
        settings.model_copy(
            update={
                "database_url": database_url,
                "azure_storage_connection_string": SecretStr(azurite.connection_string),
                "blob_container": container,
            }
        )
    )
    body = request_bodies(frame.iloc[-1:])[0]
    key = storage.create_device_key(body["user_id"], "soak").plaintext
    make_request = _request_factory(body, key)
    server_log = args.out / (
        "soak-blob-outage.server.log" if args.blob_outage else "soak.server.log"
    )
    duration_s = args.minutes * 60
    outage = _plan_outage(args, duration_s) if args.blob_outage else None

    say(f"starting {' '.join(target.command[1:])} on {target.url}, log in {server_log}")
    process = start_server(target, server_log)
    try:
        wait_ready(target)
        first = make_request()
        check = httpx.post(
            target.url + first.path, content=first.body, headers=first.headers, timeout=30
        )
        check.raise_for_status()
        say(f"answers: {check.text[:160]}")
        tree = ProcessTree(process.pid)
        say(
            f"{args.rate:g} requests/s for {args.minutes:g} min"
            + (f", blob store unreachable {outage.start_s:g}-{outage.end_s:g} s" if outage else "")
        )
        started = dt.datetime.now(dt.UTC)
        client_cpu, wall = _own_cpu_s(), time.monotonic()
        outcomes, samples = asyncio.run(
            _load(target, make_request, args, duration_s, tree, proxy, outage)
        )
        client_cores = (_own_cpu_s() - client_cpu) / (time.monotonic() - wall)
        load_s = time.monotonic() - wall
        say("load over; waiting for the outbox to drain")
        drain = _drain(target, storage, outcomes, args.drain_timeout_s)
    finally:
        stop_all([process])
        storage.close()
    return {
        "benchmark": "soak",
        "date": started.date().isoformat(),
        "started_at": started.isoformat(timespec="seconds"),
        "command": " ".join(["benchmarks/soak.py", *sys.argv[1:]]),
        "settings": {
            "rate_per_s": args.rate,
            "minutes": args.minutes,
            "workers": args.workers,
            "trees": args.trees,
            "warmup_s": _warmup_s(args, duration_s),
            "sample_s": args.sample_s,
        },
        "machine": {"cpus": os.cpu_count(), "load_avg_at_end": list(os.getloadavg())},
        "server": target.label,
        "server_exit_code": process.returncode,
        "server_log": str(server_log),
        "access_log_lines": _access_lines(server_log),
        "outage": dataclasses.asdict(outage) if outage else None,
        "minutes": _per_minute(outcomes, samples, args.minutes, outage),
        "overall": {
            **_overall(outcomes),
            "load_wall_s": round(load_s, 1),
            "client_cpu_cores": round(client_cores, 2),
        },
        "memory": _memory(samples, _warmup_s(args, duration_s), duration_s),
        "drain": drain,
        "samples": [
            {
                "t_s": round(s.t_s, 1),
                "processes": {str(pid): _reading(r) for pid, r in s.tree.processes.items()},
                "cpu_s": round(s.tree.cpu_s, 2),
                "backlog": s.backlog,
                "flush_failures": s.flush_failures,
                "load_1m": s.load_1m,
            }
            for s in samples
        ],
    }


def _own_cpu_s() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


def _reading(reading: Reading) -> dict[str, Any]:
    return {
        "role": reading.role,
        "rss_mb": round(reading.rss_bytes / MB, 1),
        "cpu_s": round(reading.cpu_s, 2),
    }


# -- load, samples and the outage ------------------------------------------------------------


def _request_factory(body: dict[str, Any], key: str) -> Any:
    text_ = json.dumps({**body, "event_id": EVENT_ID_SLOT}, separators=(",", ":"))
    prefix, suffix = (part.encode() for part in text_.split(EVENT_ID_SLOT))
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}

    def make() -> Request:
        event_id = str(uuid.uuid4())
        return Request("/v1/predictions", prefix + event_id.encode() + suffix, headers, event_id)

    return make


async def _load(
    target: Target,
    make_request: Any,
    args: argparse.Namespace,
    duration_s: float,
    tree: ProcessTree,
    proxy: TcpProxy,
    outage: Outage | None,
) -> tuple[list[Outcome], list[Sample]]:
    start = time.perf_counter()
    stop = asyncio.Event()
    samples: list[Sample] = []
    sampler = asyncio.create_task(_sample(target, tree, start, args.sample_s, stop, samples))
    fault = asyncio.create_task(_inject(proxy, outage, start)) if outage else None
    outcomes = await run_open_loop(
        "127.0.0.1",
        target.port,
        make_request,
        rate=args.rate,
        duration_s=duration_s,
        connections=args.connections,
    )
    stop.set()
    await sampler
    if fault is not None:
        await fault
    return outcomes, samples


async def _sample(
    target: Target,
    tree: ProcessTree,
    start: float,
    every_s: float,
    stop: asyncio.Event,
    out: list[Sample],
) -> None:
    async with httpx.AsyncClient(base_url=target.url, timeout=5) as client:
        while True:
            gauges = await _gauges(client)
            out.append(
                Sample(
                    t_s=time.perf_counter() - start,
                    tree=tree.sample(),
                    backlog=gauges.get("fg_outbox_backlog"),
                    flush_failures=gauges.get("fg_blob_flush_failures"),
                    load_1m=os.getloadavg()[0],
                )
            )
            try:
                await asyncio.wait_for(stop.wait(), timeout=every_s)
                return
            except TimeoutError:
                continue


async def _gauges(client: httpx.AsyncClient) -> dict[str, float]:
    try:
        metrics = (await client.get("/metrics")).text
    except httpx.HTTPError:
        return {}
    return {
        name: float(match.group(1))
        for name in ("fg_outbox_backlog", "fg_blob_flush_failures")
        if (match := re.search(rf"^{name}\s+(\S+)$", metrics, re.M)) is not None
    }


def _plan_outage(args: argparse.Namespace, duration_s: float) -> Outage:
    """In the middle of the run; on a minute boundary when the run is long enough for the outage
    to fill one minute's row of the table on its own."""
    if args.outage_s > duration_s / 2:
        sys.exit("--outage-s must be at most half the run")
    start = 60.0 * (args.minutes // 2) if args.minutes >= 3 else (duration_s - args.outage_s) / 2
    return Outage(mode=args.outage_mode, start_s=start, end_s=start + args.outage_s)


async def _inject(proxy: TcpProxy, outage: Outage, start: float) -> None:
    await asyncio.sleep(max(0.0, start + outage.start_s - time.perf_counter()))
    await asyncio.to_thread(proxy.stop if outage.mode == "stop" else proxy.blackhole)
    outage.began_at = round(time.perf_counter() - start, 2)
    say(f"blob store unreachable ({outage.mode}) at {outage.began_at} s")
    await asyncio.sleep(max(0.0, start + outage.end_s - time.perf_counter()))
    await asyncio.to_thread(proxy.start)
    outage.ended_at = round(time.perf_counter() - start, 2)
    say(f"blob store back at {outage.ended_at} s")


# -- after the load: does everything answered reach both stores? -----------------------------


def _drain(
    target: Target, storage: Storage, outcomes: list[Outcome], timeout_s: float
) -> dict[str, Any]:
    """Wait for an empty outbox backlog, then count the answered ids in SQL and in the blobs
    (again until complete or ``timeout_s``): the shipper must catch up on its own, while the
    server still runs, not only in its shutdown flush."""
    answered = {o.event_id for o in outcomes if o.ok}
    start = time.monotonic()
    backlog_zero_s: float | None = None
    while time.monotonic() - start < timeout_s:
        try:
            metrics = httpx.get(target.url + "/metrics", timeout=5).text
        except httpx.HTTPError:
            metrics = ""
        match = re.search(r"^fg_outbox_backlog\s+(\S+)$", metrics, re.M)
        if match is not None and float(match.group(1)) == 0:
            backlog_zero_s = round(time.monotonic() - start, 1)
            break
        time.sleep(1)
    while True:
        counts = _count(storage, answered)
        complete = counts["missing_in_sql"] == 0 and counts["missing_in_blobs"] == 0
        if complete or time.monotonic() - start >= timeout_s:
            break
        time.sleep(5)
    return {
        "answered": len(answered),
        "backlog_zero_after_s": backlog_zero_s,
        "complete_after_s": round(time.monotonic() - start, 1) if complete else None,
        **counts,
    }


def _count(storage: Storage, answered: set[str]) -> dict[str, int]:
    with storage.engine.connect() as connection:
        in_sql = {
            str(row[0]) for row in connection.execute(text("SELECT event_id FROM predictions"))
        }
    blob_ids: list[str] = []
    store = storage.feature_store
    keys = store.blobs.list("features/")
    for key in keys:
        blob_ids.extend(store.read_key(key).column("event_id").to_pylist())
    in_blobs = set(blob_ids)
    return {
        "sql_rows": len(in_sql),
        "answered_in_sql": len(answered & in_sql),
        "missing_in_sql": len(answered - in_sql),
        "blob_files": len(keys),
        "blob_rows": len(blob_ids),
        "blob_duplicate_rows": len(blob_ids) - len(in_blobs),
        "answered_in_blobs": len(answered & in_blobs),
        "missing_in_blobs": len(answered - in_blobs),
    }


def _access_lines(log: Path) -> int:
    with log.open("rb") as lines:
        return sum(1 for line in lines if b'"route":"/v1/predictions"' in line)


# -- figures ---------------------------------------------------------------------------------


def _warmup_s(args: argparse.Namespace, duration_s: float) -> float:
    return min(args.warmup_s, duration_s / 4)


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def _per_minute(
    outcomes: list[Outcome], samples: list[Sample], minutes: float, outage: Outage | None
) -> list[dict[str, Any]]:
    rows = []
    previous: Sample | None = samples[0] if samples else None
    for m in range(int(np.ceil(minutes))):
        lo, hi = 60.0 * m, 60.0 * (m + 1)
        these = [o for o in outcomes if lo <= o.due_s < hi]
        latencies = [o.latency_ms for o in these if o.sent]
        in_minute = [s for s in samples if lo < s.t_s <= hi]
        last = in_minute[-1] if in_minute else previous
        cpu = None
        if previous is not None and last is not None and last.t_s > previous.t_s:
            cpu = round((last.tree.cpu_s - previous.tree.cpu_s) / (last.t_s - previous.t_s), 2)
        backlogs = [s.backlog for s in in_minute if s.backlog is not None]
        rows.append(
            {
                "minute": m + 1,
                "requests": len(these),
                "errors": sum(o.sent and not o.ok for o in these),
                "not_sent": sum(not o.sent for o in these),
                "p50_ms": _pct(latencies, 50),
                "p99_ms": _pct(latencies, 99),
                "client_lag_p99_ms": _pct([o.lag_ms for o in these if o.sent], 99),
                "server_cpu_cores": cpu,
                "rss_mb": round(last.tree.total_rss_bytes / MB, 1) if last else None,
                "backlog_max": max(backlogs) if backlogs else None,
                "load_1m": round(statistics.mean(s.load_1m for s in in_minute), 2)
                if in_minute
                else None,
                "blob_outage": outage is not None and outage.start_s < hi and outage.end_s > lo,
            }
        )
        previous = last
    return rows


def _overall(outcomes: list[Outcome]) -> dict[str, Any]:
    latencies = [o.latency_ms for o in outcomes if o.sent]
    return {
        "requests": len(outcomes),
        "errors": sum(o.sent and not o.ok for o in outcomes),
        "not_sent": sum(not o.sent for o in outcomes),
        "statuses": dict(Counter(str(o.status) for o in outcomes)),
        "p50_ms": _pct(latencies, 50),
        "p99_ms": _pct(latencies, 99),
        "p999_ms": _pct(latencies, 99.9),
        "max_ms": round(max(latencies), 2) if latencies else None,
        "client_lag_p99_ms": _pct([o.lag_ms for o in outcomes if o.sent], 99),
    }


def _memory(samples: list[Sample], warmup_s: float, duration_s: float) -> dict[str, Any]:
    """RSS growth of the process tree from the first sample after the warm-up to the last one of
    the load (start-up allocations, pools and caches filling are behind by then), over the
    processes alive at both: a child started in between (the shipper starts with the first
    batch) is not growth of the others."""
    after = [s for s in samples if warmup_s <= s.t_s <= duration_s + 1]
    if len(after) < 2:
        return {}
    first, last = after[0].tree.processes, after[-1].tree.processes
    common = first.keys() & last.keys()
    base = sum(first[pid].rss_bytes for pid in common)
    end = sum(last[pid].rss_bytes for pid in common)
    growth = (end - base) / base
    return {
        "baseline_t_s": round(after[0].t_s, 1),
        "end_t_s": round(after[-1].t_s, 1),
        "baseline_mb": round(base / MB, 1),
        "end_mb": round(end / MB, 1),
        "peak_total_mb": round(max(s.tree.total_rss_bytes for s in after) / MB, 1),
        "growth": round(growth, 4),
        "target_met": growth < GROWTH_TARGET,
        "by_process": {
            _name(last, pid): {
                "baseline_mb": round(first[pid].rss_bytes / MB, 1),
                "end_mb": round(last[pid].rss_bytes / MB, 1),
            }
            for pid in sorted(common)
        },
        "started_after_baseline": sorted(last[pid].role for pid in last.keys() - common),
    }


def _name(processes: dict[int, Reading], pid: int) -> str:
    """The process's role, with its pid when another process has the same role (workers)."""
    role = processes[pid].role
    return role if sum(r.role == role for r in processes.values()) == 1 else f"{role} {pid}"


def _markdown(r: dict[str, Any]) -> str:
    s, o, mem, drain = r["settings"], r["overall"], r["memory"], r["drain"]
    lines = [
        f"### Soak{' with a blob-store outage' if r['outage'] else ''}: {s['rate_per_s']:g} "
        f"requests/s for {s['minutes']:g} min, {s['workers']} worker(s), {r['date']}",
        "",
        f"`{r['command']}`",
        "",
        "| minute | requests due | errors | not sent | p50 (ms) | p99 (ms) | client lag p99 (ms) | "
        "server CPU (cores) | RSS (MB) | outbox backlog max | load avg 1m |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in r["minutes"]:
        mark = " (blob store down)" if m["blob_outage"] else ""
        lines.append(
            f"| {m['minute']}{mark} | {m['requests']:,} | {m['errors']} | {m['not_sent']:,} | "
            f"{_num(m['p50_ms'])} | {_num(m['p99_ms'])} | {_num(m['client_lag_p99_ms'])} | "
            f"{m['server_cpu_cores']} | {m['rss_mb']} | {_num(m['backlog_max'])} | "
            f"{m['load_1m']} |"
        )
    lines += [
        "",
        f"- Overall: {o['requests']:,} requests, {o['errors']} errors, {o['not_sent']} not sent "
        f"(statuses {o['statuses']}) in {o['load_wall_s']} s, "
        f"p50 {o['p50_ms']} ms, p99 {o['p99_ms']} ms, p99.9 {o['p999_ms']} ms, max "
        f"{o['max_ms']} ms; {r['access_log_lines']:,} access-log lines for predictions; the "
        f"load generator used {o['client_cpu_cores']} cores; {r['machine']['cpus']} CPUs.",
    ]
    if mem:
        lines.append(
            f"- RSS of the API's process tree ({', '.join(mem['by_process'])}): "
            f"{mem['baseline_mb']} MB at {mem['baseline_t_s']} s (end of warm-up), "
            f"{mem['end_mb']} MB at {mem['end_t_s']} s: growth {mem['growth']:.1%} (target < "
            f"{GROWTH_TARGET:.0%}: {'met' if mem['target_met'] else 'NOT met'}); by process "
            + ", ".join(
                f"{role} {v['baseline_mb']} -> {v['end_mb']} MB"
                for role, v in mem["by_process"].items()
            )
            + (
                f"; started later: {', '.join(mem['started_after_baseline'])}"
                if mem["started_after_baseline"]
                else ""
            )
            + "."
        )
    if r["outage"]:
        out = r["outage"]
        lines.append(
            f"- Blob store unreachable ({out['mode']}) from {out['began_at']} s to "
            f"{out['ended_at']} s of the load."
        )
    lines.append(
        f"- Drain: outbox backlog 0 {drain['backlog_zero_after_s']} s after the load; "
        f"{drain['answered']:,} answered event_ids, {drain['answered_in_sql']:,} in SQL "
        f"({drain['sql_rows']:,} rows), {drain['answered_in_blobs']:,} in {drain['blob_files']} "
        f"blob files ({drain['blob_rows']:,} rows, {drain['blob_duplicate_rows']} duplicates); "
        f"missing: {drain['missing_in_sql']} in SQL, {drain['missing_in_blobs']} in blobs; "
        f"server exit code {r['server_exit_code']}."
    )
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


# -- PostgreSQL ------------------------------------------------------------------------------


def _create_database(name: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _drop_database(name: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def say(message: str) -> None:
    print(f"[soak] {message}", file=sys.stderr, flush=True)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=150.0, help="requests per second")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the load")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--connections", type=int, default=64, help="client keep-alive connections at most"
    )
    parser.add_argument("--warmup-s", type=float, default=60.0, help="before the RSS baseline")
    parser.add_argument("--sample-s", type=float, default=5.0, help="RSS/CPU/backlog sampling")
    parser.add_argument("--blob-outage", action="store_true", help="Azurite away mid-run")
    parser.add_argument("--outage-s", type=float, default=60.0)
    parser.add_argument("--outage-mode", choices=("stop", "blackhole"), default="stop")
    parser.add_argument("--drain-timeout-s", type=float, default=300.0)
    parser.add_argument("--users", type=int, default=300, help="simulated users (30 days each)")
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--home", type=Path, help="HOME to use and keep; a model trained there earlier is reused"
    )
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(tempfile.gettempdir()) / "fg-soak",
        help="folder of the JSON, markdown and server log",
    )
    return parser.parse_args()


if __name__ == "__main__":
    main()
