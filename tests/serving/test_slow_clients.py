"""Slow, stalled and vanishing clients: the server lets go of them in bounded time, quietly.

A raw socket plays the client (httpx would finish what it started). The deadlines are shortened
for the test; the server runs the HTTP protocol ``fatigue-guard serve`` runs.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from uvicorn.importer import import_from_string

from fatigue_guard.cli.serve import uvicorn_options
from fatigue_guard.serving import middleware
from fatigue_guard.serving.middleware import GuardedHttpToolsProtocol
from tests.fixtures.models import TrainedRegistry
from tests.fixtures.waiting import wait_until
from tests.serving.conftest import LiveApi
from tests.serving.running_api import port_of, running_api, seconds_until_closed

HEAD_S = 1.0
BODY_IDLE_S = 1.0
BODY_TOTAL_S = 3.0
# Added to a deadline before the test calls the connection held too long: the server's timer
# fires on an event loop that may be busy on a loaded two-core machine, and the test polls.
MARGIN_S = 4.0


class QuickHeadProtocol(GuardedHttpToolsProtocol):
    head_timeout_s = HEAD_S


@pytest.fixture
def api(
    tmp_path: Path, trained_registry: TrainedRegistry, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveApi]:
    monkeypatch.setattr(middleware, "BODY_IDLE_TIMEOUT_S", BODY_IDLE_S)
    monkeypatch.setattr(middleware, "BODY_TOTAL_TIMEOUT_S", BODY_TOTAL_S)
    settings = trained_registry.settings(tmp_path)
    with running_api(settings, trained_registry, http=QuickHeadProtocol) as (live, _):
        yield live


def test_serve_runs_the_protocol_with_the_head_deadline() -> None:
    assert import_from_string(uvicorn_options("info")["http"]) is GuardedHttpToolsProtocol


def _connect(api: LiveApi) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port_of(api)), timeout=5)


def _head(api: LiveApi, body_length: int) -> bytes:
    key = api.key_for("slow-user")
    return (
        "POST /v1/predictions HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: {body_length}\r\n\r\n"
    ).encode()


def _body(api: LiveApi) -> bytes:
    return json.dumps({**api.bodies(1)[0], "user_id": "slow-user"}).encode()


def test_a_connection_that_sends_nothing_is_closed(api: LiveApi) -> None:
    with _connect(api) as sock:
        held, sent = seconds_until_closed(sock, HEAD_S + MARGIN_S)
    assert HEAD_S * 0.9 <= held <= HEAD_S + MARGIN_S
    assert sent == b""


def test_partial_headers_are_answered_408_and_closed(api: LiveApi) -> None:
    with _connect(api) as sock:
        sock.sendall(b"POST /v1/predictions HTTP/1.1\r\nHost: test\r\nContent-Ty")
        held, sent = seconds_until_closed(sock, HEAD_S + MARGIN_S)
    assert HEAD_S * 0.9 <= held <= HEAD_S + MARGIN_S
    assert sent.startswith(b"HTTP/1.1 408 ")


def _drip(sock: socket.socket, data: bytes, every_s: float, limit_s: float) -> tuple[float, bytes]:
    """Send ``data`` a byte at a time until the server answers or closes: how long that took
    (``inf``: not within ``limit_s``) and what it sent."""
    start = time.monotonic()
    sock.settimeout(every_s)
    for byte in data:
        if time.monotonic() - start > limit_s:
            break
        try:
            sock.sendall(bytes([byte]))
            received = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:  # reset or broken pipe: closed
            return time.monotonic() - start, b""
        return time.monotonic() - start, received  # an answer, or b"" for a close
    return float("inf"), b""


def test_a_head_sent_byte_by_byte_still_meets_one_deadline(api: LiveApi) -> None:
    # Each byte comes well within any per-read timeout; the head as a whole never does.
    head = b"GET /healthz HTTP/1.1\r\nHost: test\r\n" + b"X-Pad: y\r\n" * 200
    with _connect(api) as sock:
        held, sent = _drip(sock, head, every_s=0.05, limit_s=HEAD_S + MARGIN_S)
    assert HEAD_S * 0.9 <= held <= HEAD_S + MARGIN_S
    assert sent.startswith(b"HTTP/1.1 408 ") or sent == b""


def test_a_truncated_body_is_answered_408_and_closed(api: LiveApi) -> None:
    body = _body(api)
    with _connect(api) as sock:
        sock.sendall(_head(api, len(body)) + body[: len(body) // 2])
        held, sent = seconds_until_closed(sock, BODY_IDLE_S + MARGIN_S)
    assert BODY_IDLE_S * 0.9 <= held <= BODY_IDLE_S + MARGIN_S
    assert sent.startswith(b"HTTP/1.1 408 ")
    assert b"application/problem+json" in sent


def test_a_dripping_body_is_cut_off_at_the_total_deadline(api: LiveApi) -> None:
    body = _body(api)
    with _connect(api) as sock:
        sock.sendall(_head(api, len(body)))
        # A byte every 0.3 s: never idle for BODY_IDLE_S, never done.
        held, sent = _drip(sock, body, every_s=0.3, limit_s=BODY_TOTAL_S + MARGIN_S)
    assert BODY_TOTAL_S * 0.9 <= held <= BODY_TOTAL_S + MARGIN_S
    assert sent.startswith(b"HTTP/1.1 408 ")


def test_a_client_that_disconnects_mid_request_costs_one_short_line(
    api: LiveApi, caplog: pytest.LogCaptureFixture
) -> None:
    body = _body(api)
    with api.client("slow-user") as client:
        assert client.get("/v1/me").status_code == 200  # its key is verified and cached
    caplog.set_level(logging.INFO)
    since = time.time()
    with _connect(api) as sock:
        sock.sendall(_head(api, len(body)) + body[:20])
        time.sleep(0.3)  # the request is in the app, reading its body

    def request_records() -> list[logging.LogRecord]:
        return [
            r
            for r in caplog.records
            if r.created >= since
            and r.name.startswith(("uvicorn", "fatigue_guard.serving", "fatigue_guard.access"))
        ]

    # The access log line comes once the app has let go of the request.
    wait_until(
        lambda: any(r.name == "fatigue_guard.access" for r in request_records()), timeout_s=5
    )
    time.sleep(0.3)  # anything logged after it would be in by now
    records = request_records()
    assert [r for r in records if r.levelno >= logging.WARNING] == []
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in records)
    assert len(records) == 1, [r.getMessage() for r in records]
    line = json.loads(records[0].getMessage())
    assert (line["route"], line["status"]) == ("/v1/predictions", 499)
