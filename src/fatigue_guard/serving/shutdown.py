"""The stop of an API process, shared by ``fatigue-guard serve``'s server and the app.

Kept apart from :mod:`fatigue_guard.serving.state` so that the CLI can import it without the
serving stack (every command imports the ``serve`` module).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

# The key under which the app's lifespan hands its :class:`Shutdown` to the server (ASGI lifespan
# state): how ``fatigue-guard serve``'s server tells this app that a stop signal arrived.
SHUTDOWN_STATE_KEY = "fatigue_guard.shutdown"

# The longest time /readyz answers 503 while the process keeps serving: long enough for a load
# balancer's next probe or an endpoint update to take the process out of rotation.
MAX_DRAIN_DELAY_S = 5.0


@dataclass
class Shutdown:
    """The stop of one API process, within ``grace_s`` from the stop signal.

    The budget, in order: :attr:`drain_delay_s` of serving on with /readyz at 503, then up to
    :attr:`requests_s` for the requests in flight once the port is closed, then whatever is left
    (:meth:`remaining_s`) for the recorder to commit and ship what it holds.
    """

    grace_s: float
    started_at: float | None = None  # time.monotonic() of the stop signal

    @property
    def drain_delay_s(self) -> float:
        return min(MAX_DRAIN_DELAY_S, self.grace_s / 4)

    @property
    def requests_s(self) -> float:
        return self.grace_s / 4

    @property
    def draining(self) -> bool:
        return self.started_at is not None

    def begin(self) -> None:
        if self.started_at is None:
            self.started_at = time.monotonic()

    def remaining_s(self) -> float:
        """What is left of the grace period (all of it if no signal started the stop)."""
        started = time.monotonic() if self.started_at is None else self.started_at
        return max(0.0, started + self.grace_s - time.monotonic())
