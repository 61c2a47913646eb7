"""``x-served-by-pid`` on every response: which worker process answered.

With ``serve --workers N`` the kernel spreads connections over N processes that each follow the
registry on their own; this header is how a client (the zero-downtime test, an operator with
curl) sees which process produced an answer and so whether every one of them has converged.
The pid reveals nothing about users and costs one list append per response.
"""

from __future__ import annotations

import os

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SERVED_BY_HEADER = b"x-served-by-pid"


class ServedByMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Read per request, not at import: uvicorn forks workers after importing the app module.
        pid = str(os.getpid()).encode()

        async def send_with_pid(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (SERVED_BY_HEADER, pid)],
                }
            await send(message)

        await self.app(scope, receive, send_with_pid)
