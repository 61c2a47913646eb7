"""``fatigue-guard serve``: run the HTTP API."""

from __future__ import annotations

from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve the API with the production model (configuration from FATIGUE_GUARD_* variables)."""
    import uvicorn

    uvicorn.run(
        "fatigue_guard.serving.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,  # request lines carry user ids; our own middleware logs safely
        timeout_graceful_shutdown=10,
    )
