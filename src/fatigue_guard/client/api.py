"""The HTTP side of the reference client: one place that decides what counts as "offline".

The client's whole behaviour hinges on one distinction, made here and nowhere else:

- :class:`Unreachable` - a network error, a timeout, a 5xx, or a 429: the server could not
  answer *now*. The client falls back to the edge model, queues, and retries later.
- :class:`ApiError` - any other 4xx: the server answered and said no (bad key, another user's
  data, contract violation). Retrying the same request cannot help, so it is raised.
"""

from __future__ import annotations

from typing import Any

import httpx

from fatigue_guard import __version__


class Unreachable(Exception):
    """The server gave no usable answer; ``retry_after_s`` when it said how long to wait."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class ApiError(Exception):
    """The server refused the request (4xx other than 429); ``problem`` is its problem+json."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {problem.get('detail') or problem}")
        self.status = status
        self.problem = problem


class ApiClient:
    """httpx with the device key; JSON in, JSON out, failures sorted into the two kinds."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float,
        transfer_timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.transfer_timeout_s = transfer_timeout_s
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": f"fatigue-guard-client/{__version__}",
            },
            timeout=timeout_s,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def post_json(
        self, path: str, body: dict[str, Any], *, timeout_s: float | None = None
    ) -> tuple[int, dict[str, Any]]:
        """``(status, json)`` for a 2xx; raises :class:`Unreachable` or :class:`ApiError`."""
        response = self._send("POST", path, json=body, timeout=timeout_s or self.timeout_s)
        return response.status_code, response.json()

    def get(self, path: str, *, etag: str | None = None) -> httpx.Response:
        """A 200 or 304 response (conditional on ``etag``); same failure rules as POST."""
        headers = {"If-None-Match": etag} if etag else {}
        return self._send("GET", path, headers=headers, timeout=self.transfer_timeout_s)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:  # connect / read / timeout / protocol errors
            raise Unreachable(f"{type(exc).__name__}: {exc}") from None
        status = response.status_code
        if status < 400:
            return response
        if status >= 500 or status == 429:
            raise Unreachable(f"HTTP {status}", _retry_after(response))
        raise ApiError(status, _problem(response))


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"detail": response.text[:200]}
    return body if isinstance(body, dict) else {"detail": body}
