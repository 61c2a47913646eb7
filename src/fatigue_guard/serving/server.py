"""The uvicorn server ``fatigue-guard serve`` runs: a stop signal drains the process first.

Imported by the ``serve`` command only, not when the CLI starts (uvicorn is not needed there).
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Iterator
from types import FrameType

import uvicorn
from uvicorn.supervisors import multiprocess

from fatigue_guard.serving.shutdown import SHUTDOWN_STATE_KEY, Shutdown


class DrainingServer(uvicorn.Server):
    """uvicorn's server, stopped by SIGTERM or SIGINT in two steps (a rolling restart's).

    The signal first marks the app draining (its /readyz answers 503) while the process keeps
    serving for the drain delay, so load balancers stop sending before the port closes; then
    uvicorn's own shutdown runs: stop accepting, finish the requests in flight (up to
    ``timeout_graceful_shutdown``), run the app's lifespan shutdown (the recorder commits and
    ships what it holds). A second signal stops at once.

    The first signal is not re-raised once the server has stopped (uvicorn's default), so a
    process stopped this way exits 0: it stopped as asked.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        shutdown = self._shutdown()
        if self._drain_until is not None or shutdown is None:
            # Told again, or still starting (no app to drain): uvicorn's immediate stop.
            super().handle_exit(sig, frame)
            return
        shutdown.begin()
        self._drain_until = time.monotonic() + shutdown.drain_delay_s

    def _shutdown(self) -> Shutdown | None:
        if not self.started:
            return None
        shutdown = self.lifespan.state.get(SHUTDOWN_STATE_KEY)
        return shutdown if isinstance(shutdown, Shutdown) else None

    async def on_tick(self, counter: int) -> bool:
        # Checked here, on the event loop, not in the signal handler: the handler may run in
        # the middle of the loop's own bookkeeping, where scheduling a callback is not safe.
        if self._drain_until is not None and time.monotonic() >= self._drain_until:
            self.should_exit = True
        return await super().on_tick(counter)


class _DrainingWorker(multiprocess.Process):
    """A worker process of ``--workers N`` that runs :class:`DrainingServer`.

    The supervisor forwards its SIGTERM to every worker; this class, pickled to the spawned
    worker, is what makes that worker drain rather than stop at once.
    """

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = DrainingServer(config=self.config)
        return self._server


@contextlib.contextmanager
def draining_servers() -> Iterator[None]:
    """Make ``uvicorn.run`` build :class:`DrainingServer` (one process) or workers that do.

    uvicorn takes no server class as an option, so the classes it looks up are swapped for the
    duration of the run, in this process only.
    """
    # The module, not ``uvicorn.main``: that name is the ``uvicorn`` command's function.
    main = importlib.import_module("uvicorn.main")
    saved = main.Server, multiprocess.Process
    main.Server, multiprocess.Process = DrainingServer, _DrainingWorker
    try:
        yield
    finally:
        main.Server, multiprocess.Process = saved
