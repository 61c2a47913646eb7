"""Group commit: many concurrent callers share one durable write.

A durable commit costs one fsync (SQLite WAL with ``synchronous=FULL``) or one WAL flush
(PostgreSQL), milliseconds either way, and paying it once per request caps a process at a few
hundred requests per second with long queues behind the disk. :class:`GroupCommitter` runs one
writer thread that takes *everything* that queued while its previous write was in flight and hands
it to ``write_batch`` as one batch, then wakes every caller of that batch. Under load the batch
grows by itself (the longer a write takes, the more it carries), so the fsync cost per request
falls with concurrency; a lone request waits for no one (``max_wait_s`` is 0 by default: no
artificial delay, the batch is "whatever arrived meanwhile").

Callers either block on a :class:`concurrent.futures.Future` (:meth:`submit`, any thread) or
await (:meth:`submit_async`, from an event loop, with no thread-pool hop). Async waiters of one
batch are woken with one ``call_soon_threadsafe`` per event loop, not one per request.

A caller is woken only after ``write_batch`` returned, i.e. after its item is durable: that is the
"durable before it answers" guarantee the API builds on. ``write_batch`` must return one result
per item, in order; a result that is an exception is raised to that caller alone, and if
``write_batch`` itself raises, every caller of that batch gets the exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

BatchWriter = Callable[[Sequence[ItemT]], Sequence[ResultT]]


@dataclass(slots=True)
class Pending(Generic[ItemT]):
    """One caller waiting for the outcome of its ``item``; see :func:`deliver`."""

    item: ItemT
    # Exactly one of the two is set: a thread waits on ``future``, a coroutine on ``waiter``.
    future: Future | None = None
    waiter: asyncio.Future | None = None
    loop: asyncio.AbstractEventLoop | None = None


@dataclass(frozen=True, slots=True)
class GroupCommitStats:
    """Cumulative counters (``items / batches`` is the mean group size)."""

    batches: int
    items: int
    failed_batches: int
    max_batch: int


class GroupCommitterStopped(RuntimeError):
    """Raised to callers whose items were submitted after :meth:`GroupCommitter.stop`."""


_STOP = object()  # queue sentinel: the writer drains what is queued before it, then exits


class GroupCommitter(Generic[ItemT, ResultT]):
    """One writer thread that batches concurrent submissions into one ``write_batch`` call."""

    def __init__(
        self,
        write_batch: BatchWriter,
        *,
        max_batch: int = 256,
        max_wait_s: float = 0.0,
        name: str = "group-commit",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._name = name
        # SimpleQueue: lock-free put from the event loop (never blocks it), C-implemented.
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()
        # Guards "accepting + put" against "stop accepting + put STOP": nothing can be queued
        # behind the sentinel, where no writer would ever see it.
        self._accept_lock = threading.Lock()
        self._accepting = False
        self._batches = 0
        self._items = 0
        self._failed = 0
        self._largest = 0

    # -- callers ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether submissions are accepted (between :meth:`start` and :meth:`stop`)."""
        return self._accepting

    def submit(self, item: ItemT) -> Future:
        """Queue ``item``; the future resolves to its result once its batch is durable."""
        future: Future = Future()
        self._put(Pending(item, future=future))
        return future

    async def submit_async(self, item: ItemT) -> ResultT:
        """Queue ``item`` and await its result (call from the event loop; no thread hop)."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._put(Pending(item, waiter=waiter, loop=loop))
        return await waiter

    def _put(self, pending: Pending) -> None:
        with self._accept_lock:
            if not self._accepting:
                raise GroupCommitterStopped(f"{self._name} is not running")
            self._queue.put(pending)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        with self._lifecycle:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
            with self._accept_lock:
                self._accepting = True

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write everything submitted so far, then stop the writer thread."""
        with self._lifecycle:
            thread = self._thread
            if thread is None:
                return
            with self._accept_lock:
                self._accepting = False
                self._queue.put(_STOP)
            thread.join(timeout=timeout_s)
            if thread.is_alive():
                log.warning("%s did not finish within %.1f s", self._name, timeout_s)
            self._thread = None
        # Only if the writer died or timed out: whatever it left must not wait forever.
        self._fail_leftovers()

    def stats(self) -> GroupCommitStats:
        return GroupCommitStats(self._batches, self._items, self._failed, self._largest)

    # -- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stopping = self._collect(first)
            self._write(batch)
            if stopping:
                return

    def _collect(self, first: Pending) -> tuple[list[Pending], bool]:
        """``first`` plus whatever else is queued (up to ``max_batch``); whether STOP was seen."""
        batch = [first]
        deadline = time.monotonic() + self._max_wait_s if self._max_wait_s > 0 else None
        while len(batch) < self._max_batch:
            try:
                if deadline is None:
                    nxt = self._queue.get_nowait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        nxt = self._queue.get_nowait()
                    else:
                        nxt = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if nxt is _STOP:
                return batch, True
            batch.append(nxt)
        return batch, False

    def _write(self, batch: list[Pending]) -> None:
        try:
            results = self._write_batch([p.item for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"write_batch returned {len(results)} results for {len(batch)}")
        except BaseException as exc:  # every waiter must wake up, whatever happened
            self._failed += 1
            log.exception("%s: a batch of %d failed", self._name, len(batch))
            self._settle(batch, None, exc)
            return
        self._batches += 1
        self._items += len(batch)
        self._largest = max(self._largest, len(batch))
        self._settle(batch, results, None)

    @staticmethod
    def _settle(
        batch: list[Pending],
        results: Sequence[object] | None,
        error: BaseException | None,
    ) -> None:
        deliver(
            (pending, error if error is not None else results[index])  # type: ignore[index]
            for index, pending in enumerate(batch)
        )

    def _fail_leftovers(self) -> None:
        stopped = GroupCommitterStopped(f"{self._name} stopped")
        leftovers = []
        while True:
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                break
            if pending is not _STOP:
                leftovers.append(pending)
        if leftovers:
            self._settle(leftovers, None, stopped)


def deliver(outcomes: Iterable[tuple[Pending, object]]) -> None:
    """Hand each waiting caller its outcome (a result, or an exception to raise): a thread's
    future at once, coroutines with one wake-up of each event loop for the lot, whatever their
    number (or at once, when called on their loop). A closed loop raises RuntimeError: nobody
    is waiting there any more."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, object]]] = {}
    for pending, outcome in outcomes:
        if pending.future is not None:
            if isinstance(outcome, BaseException):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)
        else:
            assert pending.loop is not None and pending.waiter is not None
            by_loop.setdefault(pending.loop, []).append((pending.waiter, outcome))
    try:
        here = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    for loop, settled in by_loop.items():
        if loop is here:  # called on the waiters' own loop: no wake-up needed
            _resolve_waiters(settled)
            continue
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve_waiters, settled)


def _resolve_waiters(settled: list[tuple[asyncio.Future, object]]) -> None:
    """Runs on the event loop: hand each waiting coroutine its result or error (a waiter whose
    client went away is skipped; its item is stored all the same)."""
    for waiter, outcome in settled:
        if waiter.done():
            continue
        if isinstance(outcome, BaseException):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)
