"""Open-loop load: requests sent at a fixed rate whatever the server's answers take.

A closed-loop client (``wrk``, a pool of senders) waits for an answer before it sends again, so a
slow server receives less load exactly when it struggles and its worst moments hide in fewer
samples. Here request ``i`` is due at ``start + i / rate`` and is queued then for the first free
one of ``connections`` keep-alive connections; each outcome records when it was due, how late it
left (all connections busy, or the client itself starved of CPU) and how long its answer took.

The client speaks just enough HTTP/1.1 over asyncio streams (a request written whole, an answer
read by its Content-Length): a general client's per-request cost was the bottleneck on a shared
2-core machine, and its connection pool slows down with the number of waiting requests, which
an open loop piles up during any stall.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

TRANSPORT_ERROR = -1  # status of a request that got no HTTP answer (refused, reset, timed out)
NOT_SENT = -2  # still queued when the load's time was up: the server had fallen that far behind


@dataclass(frozen=True)
class Outcome:
    """One request: when it was due and sent, how long its answer took, what came back."""

    due_s: float  # seconds since the load started
    lag_ms: float  # sent this long after it was due
    latency_ms: float  # from sending to the complete answer
    status: int  # HTTP status, or TRANSPORT_ERROR
    event_id: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def sent(self) -> bool:
        return self.status != NOT_SENT


@dataclass(frozen=True)
class Request:
    """One POST with a JSON body (built per request: a fresh event_id each)."""

    path: str
    body: bytes
    headers: dict[str, str]
    event_id: str

    def encode(self, host: str) -> bytes:
        lines = [f"POST {self.path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


async def run_open_loop(
    host: str,
    port: int,
    make_request: Callable[[], Request],
    *,
    rate: float,
    duration_s: float,
    connections: int = 64,
    timeout_s: float = 10.0,
    grace_s: float = 30.0,
) -> list[Outcome]:
    """Send ``rate`` requests a second for ``duration_s`` seconds; every outcome, in due order.

    Requests still queued ``grace_s`` after the last one was due are not sent (NOT_SENT): a
    server that cannot keep up would otherwise stretch the run without bound.
    """
    queue: asyncio.Queue[tuple[Request, float] | None] = asyncio.Queue()
    outcomes: list[Outcome] = []
    start = time.perf_counter()
    deadline = start + duration_s + grace_s
    workers = [
        asyncio.create_task(_connection(host, port, queue, start, deadline, timeout_s, outcomes))
        for _ in range(connections)
    ]
    for i in range(int(rate * duration_s)):
        due = i / rate
        delay = start + due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((make_request(), due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    outcomes.sort(key=lambda o: o.due_s)
    return outcomes


async def _connection(
    host: str,
    port: int,
    queue: asyncio.Queue[tuple[Request, float] | None],
    start: float,
    deadline: float,
    timeout_s: float,
    out: list[Outcome],
) -> None:
    """One keep-alive connection taking due requests off the queue; a request that fails on a
    new connection (refused, reset, timed out, malformed answer) counts as an error."""
    streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    try:
        while (item := await queue.get()) is not None:
            request, due = item
            sent = time.perf_counter()
            if sent > deadline:
                out.append(
                    Outcome(due, (sent - start - due) * 1000, 0.0, NOT_SENT, request.event_id)
                )
                continue
            raw = request.encode(f"{host}:{port}")
            status = TRANSPORT_ERROR
            # A kept-alive connection may have been closed by the server while idle (uvicorn
            # closes them after 5 s): the request is then sent once more on a new connection,
            # which is safe since the API treats a re-sent event_id as the same prediction.
            for reused in (streams is not None, False):
                try:
                    if streams is None:
                        streams = await asyncio.wait_for(
                            asyncio.open_connection(host, port), timeout_s
                        )
                    status, keep_alive = await asyncio.wait_for(_exchange(*streams, raw), timeout_s)
                except TimeoutError:
                    streams = _closed(streams)
                    break
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    streams = _closed(streams)
                    if reused:
                        continue
                    break
                if not keep_alive:
                    streams = _closed(streams)
                break
            out.append(
                Outcome(
                    due_s=due,
                    lag_ms=(sent - start - due) * 1000,
                    latency_ms=(time.perf_counter() - sent) * 1000,
                    status=status,
                    event_id=request.event_id,
                )
            )
    finally:
        if streams is not None:
            _close(streams[1])


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> tuple[int, bool]:
    """Send one request, read its whole answer; (status, whether the connection stays open)."""
    writer.write(raw)
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *header_lines = head.split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in header_lines if line)
    }
    if "content-length" not in headers:
        raise ValueError(f"answer without Content-Length: {status_line}")
    await reader.readexactly(int(headers["content-length"]))
    return status, headers.get("connection", "").lower() != "close"


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        writer.close()


def _closed(streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
    if streams is not None:
        _close(streams[1])
