"""Guessing keys is slow and learns nothing: refused keys are limited per client address before
their lookup, remembered briefly, and all answered alike (status, body and timing)."""

from __future__ import annotations

import secrets
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fatigue_guard.serving.auth import ADDRESS_FAILURE_BURST, ADDRESS_FAILURE_RATE_PER_S
from fatigue_guard.serving.rate_limit import TokenBuckets
from fatigue_guard.serving.state import ServingState
from fatigue_guard.storage.factory import Storage
from fatigue_guard.storage.keys import parse_key
from tests.fixtures.models import TrainedRegistry
from tests.serving.conftest import LiveApi
from tests.serving.running_api import KeyCheck, running_api


def _unknown_key() -> str:
    return f"fgk_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"


def _wrong_secret(real_key: str) -> str:
    parsed = parse_key(real_key)
    assert parsed is not None
    return f"fgk_{parsed[0]}_{secrets.token_urlsafe(32)}"


@pytest.fixture
def counted(
    tmp_path: Path, trained_registry: TrainedRegistry
) -> Iterator[tuple[LiveApi, ServingState, list[str]]]:
    """A live API whose key lookups are counted."""
    lookups: list[str] = []

    def counting(check: KeyCheck, _: Storage) -> KeyCheck:
        def wrapped(key: str) -> str | None:
            lookups.append(key)
            return check(key)

        return wrapped

    settings = trained_registry.settings(tmp_path)
    with running_api(settings, trained_registry, wrap_key_check=counting) as (api, state):
        yield api, state, lookups


def test_invalid_keys_are_limited_per_address_before_their_lookup(
    counted: tuple[LiveApi, ServingState, list[str]],
) -> None:
    api, _, lookups = counted
    with api.client("a-real-user") as device:
        assert device.get("/v1/me").status_code == 200  # its key is now cached
    started = time.monotonic()
    codes: list[int] = []
    with api.client() as guesser:
        for _ in range(120):
            response = guesser.get("/v1/me", headers={"Authorization": f"Bearer {_unknown_key()}"})
            codes.append(response.status_code)
            if response.status_code == 429:
                assert int(response.headers["retry-after"]) >= 1
    elapsed = time.monotonic() - started
    # The burst, plus what refilled while the test ran, plus one for rounding.
    allowed = ADDRESS_FAILURE_BURST + ADDRESS_FAILURE_RATE_PER_S * elapsed + 1
    guessed = len(lookups) - 1  # the real key's one lookup
    assert guessed <= allowed, (guessed, elapsed)
    assert codes.count(401) == guessed
    assert codes.count(429) == 120 - guessed
    # The real device, its key verified before, is not held back by its neighbour's guesses.
    with api.client("a-real-user") as device:
        assert device.get("/v1/me").status_code == 200


def test_a_refused_key_is_remembered_briefly(
    counted: tuple[LiveApi, ServingState, list[str]],
) -> None:
    api, _, lookups = counted
    bad = _wrong_secret(api.key_for("someone"))
    with api.client() as client:
        codes = [
            client.get("/v1/me", headers={"Authorization": f"Bearer {bad}"}).status_code
            for _ in range(5)
        ]
    assert codes == [401] * 5
    assert lookups.count(bad) == 1


# What the lookup of a key id that exists costs beyond one that does not (a row to fetch and a
# hash to compare): tens of microseconds in process here, 0.3 ms measured from outside against a
# remote database. That is below what HTTP timings on a shared two-core machine resolve reliably,
# so the test widens the gap in the key store to this, and asserts that the API still hides it.
INJECTED_GAP_S = 0.010


def test_unknown_key_id_and_wrong_secret_are_answered_alike(
    tmp_path: Path, trained_registry: TrainedRegistry
) -> None:
    known_ids: set[str] = set()

    def slower_for_known_ids(check: KeyCheck, _: Storage) -> KeyCheck:
        def wrapped(key: str) -> str | None:
            parsed = parse_key(key)
            if parsed is not None and parsed[0] in known_ids:
                time.sleep(INJECTED_GAP_S)
            return check(key)

        return wrapped

    settings = trained_registry.settings(tmp_path)
    with running_api(settings, trained_registry, wrap_key_check=slower_for_known_ids) as (
        api,
        state,
    ):
        assert state.auth is not None
        # This test sends hundreds of refused keys from one address on purpose.
        state.auth.failures = TokenBuckets(rate=1e6, burst=1e6)
        real = api.key_for("timed-user")
        real_id = parse_key(real)
        assert real_id is not None
        known_ids.add(real_id[0])
        samples: dict[str, list[float]] = {"unknown": [], "wrong": []}
        answers: dict[str, set[tuple[int, bytes, str, str]]] = {"unknown": set(), "wrong": set()}
        with httpx.Client(base_url=api.url, timeout=10) as client:
            client.get("/healthz")  # the connection is open before the first sample
            for pair in range(80):
                # Interleaved, and in alternating order, so that load and drift on the shared
                # machine fall on both kinds alike.
                kinds = ("unknown", "wrong") if pair % 2 else ("wrong", "unknown")
                for kind in kinds:
                    key = _unknown_key() if kind == "unknown" else _wrong_secret(real)
                    start = time.perf_counter()
                    response = client.get("/v1/me", headers={"Authorization": f"Bearer {key}"})
                    samples[kind].append(time.perf_counter() - start)
                    answers[kind].add(
                        (
                            response.status_code,
                            response.content,
                            response.headers["content-type"],
                            response.headers["www-authenticate"],
                        )
                    )
    assert answers["unknown"] == answers["wrong"]
    assert len(answers["unknown"]) == 1 and next(iter(answers["unknown"]))[0] == 401
    unknown = statistics.median(samples["unknown"])
    wrong = statistics.median(samples["wrong"])
    # Both kinds wait out the same floor from the start of their check, so what is left is
    # scheduling noise common to both. A median of 80 interleaved samples shrugs off the stalls
    # of a loaded machine; a third of the injected gap is far above that noise, yet a leak of
    # the injected size could not hide below it.
    assert abs(wrong - unknown) < INJECTED_GAP_S / 3, (wrong, unknown)
