"""Calls handed to an owner thread: run there, in order, with results and errors returned."""

from __future__ import annotations

import threading
from multiprocessing.connection import wait

import pytest

from fatigue_guard.storage.recording.thread_handoff import ThreadHandoff


def _serve(handoff: ThreadHandoff, stop: threading.Event, ran_in: list[int]) -> None:
    handoff.claim()
    ran_in.append(threading.get_ident())
    while not stop.is_set():
        if wait([handoff], timeout=0.05):
            handoff.run_pending()


def test_calls_run_in_the_owner_thread_and_return_their_results() -> None:
    handoff = ThreadHandoff()
    stop = threading.Event()
    owner: list[int] = []
    thread = threading.Thread(target=_serve, args=(handoff, stop, owner))
    thread.start()
    try:
        while not owner:
            pass
        seen: list[tuple[int, int]] = []

        def call(i: int) -> int:
            seen.append((i, threading.get_ident()))
            return i * i

        results: dict[int, int] = {}

        def caller(i: int) -> None:
            results[i] = handoff(lambda: call(i))

        callers = [threading.Thread(target=caller, args=(i,)) for i in range(20)]
        for c in callers:
            c.start()
        for c in callers:
            c.join(10)
        assert results == {i: i * i for i in range(20)}
        assert {ident for _, ident in seen} == {owner[0]}

        def fails() -> None:
            raise ValueError("no such batch")

        with pytest.raises(ValueError, match="no such batch"):
            handoff(fails)
    finally:
        stop.set()
        thread.join(10)
        handoff.close()


def test_without_an_owner_and_from_the_owner_calls_run_at_once() -> None:
    handoff = ThreadHandoff()
    here = threading.get_ident()
    assert handoff(threading.get_ident) == here  # nobody owns it yet
    handoff.claim()
    assert handoff(threading.get_ident) == here  # the owner itself: no deadlock
    handoff.close()
    assert handoff(threading.get_ident) == here  # closed


def test_close_runs_what_waits_and_later_calls_run_in_their_callers() -> None:
    handoff = ThreadHandoff()
    handoff.claim()  # this thread owns it but never runs the queue: only close() will
    answered: list[int] = []
    waiting = threading.Thread(target=lambda: answered.append(handoff(threading.get_ident)))
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive() and not answered  # handed over, not run yet
    handoff.close()
    waiting.join(10)
    assert answered == [threading.get_ident()]  # run by close(), in the owner
    other: list[int] = []
    late = threading.Thread(target=lambda: other.append(handoff(threading.get_ident)))
    late.start()
    late.join(10)
    assert other == [late.ident]
