"""``fatigue-guard serve``: run the HTTP API."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer

from fatigue_guard.serving.shutdown import Shutdown

# uvicorn's httptools protocol plus a deadline for the request head: uvicorn has none, so a
# client sending part of a head (or nothing) would hold its connection for ever.
HTTP_PROTOCOL = "fatigue_guard.serving.middleware:GuardedHttpToolsProtocol"


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_config(log_level: str) -> dict[str, Any]:
    """uvicorn's logging set-up plus our loggers at ``log_level`` (the access log is INFO).

    uvicorn configures only its own loggers, so ours fell through to the root logger, which
    passes WARNING and up (and in a worker process has no handler at all): the access log was
    never written. Given to uvicorn, this applies in every worker process.
    """
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["fatigue_guard"] = {"format": LOG_FORMAT}
    config["handlers"]["fatigue_guard"] = {
        "class": "logging.StreamHandler",
        "formatter": "fatigue_guard",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["fatigue_guard"] = {
        "handlers": ["fatigue_guard"],
        "level": log_level.upper(),
        "propagate": False,  # the CLI's root handler would write every line twice
    }
    # uvicorn's request lines hold the raw path (a user id in /v1/admin/users/{user_id}), and
    # uvicorn writes them whenever its access logger has a handler, whatever access_log says;
    # our own middleware logs each request with its route template instead.
    config["filters"] = {**config.get("filters", {}), "no_request_lines": {"()": NoRecords}}
    config["loggers"]["uvicorn.access"]["filters"] = ["no_request_lines"]
    return config


class NoRecords(logging.Filter):
    """Lets no record through (for a logger whose lines must never be written)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


def uvicorn_options(log_level: str, shutdown_grace_s: float = 20.0) -> dict[str, Any]:
    """What ``serve`` passes to uvicorn besides the app, the address and the workers."""
    return {
        "http": HTTP_PROTOCOL,
        "log_level": log_level,
        "log_config": log_config(log_level),
        "access_log": False,  # request lines carry user ids; our own middleware logs safely
        # The requests' share of the grace period, once the port is closed (see Shutdown).
        "timeout_graceful_shutdown": Shutdown(shutdown_grace_s).requests_s,
    }


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    log_level: Annotated[
        str, typer.Option(help="Log level of the server; info adds one access line a request.")
    ] = "warning",
) -> None:
    """Serve the API with the production model (configuration from FATIGUE_GUARD_* variables).

    More than one worker wants PostgreSQL: on the embedded SQLite file, the workers' commits
    queue for one file lock through SQLite's sleeping busy handler (measured p99 120 ms at
    concurrency 8 with two workers, against 42 ms on PostgreSQL).
    """
    import uvicorn
    from rich.console import Console

    from fatigue_guard.config import get_settings
    from fatigue_guard.serving.server import draining_servers

    settings = get_settings()
    if workers > 1 and settings.effective_database_url.startswith("sqlite"):
        Console(stderr=True).print(
            f"[bold yellow]warning:[/] {workers} workers share one SQLite file: every commit "
            "waits for the others' file lock (p99 above 100 ms measured under load). Set "
            "FATIGUE_GUARD_DATABASE_URL to PostgreSQL for more than one worker."
        )

    with draining_servers():
        uvicorn.run(
            "fatigue_guard.serving.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            **uvicorn_options(log_level, settings.shutdown_grace_s),
        )
