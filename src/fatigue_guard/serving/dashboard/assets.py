"""The dashboard's static files, shipped inside the package: no CDN, no network at view time.

Only the names in :data:`ASSETS` are served (no path from a URL ever reaches the file system).
``vendor/`` holds uPlot, vendored from its npm package with its licence; see
``static/vendor/README.md`` for the version and how to update it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

ASSETS: dict[str, str] = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "vendor/uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "vendor/uPlot.min.css": "text/css; charset=utf-8",
    "vendor/uPlot.LICENSE": "text/plain; charset=utf-8",
}
PAGES = ("dashboard.html", "login.html")


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def _read(name: str) -> bytes:
    return (resources.files("fatigue_guard.serving.dashboard") / "static" / name).read_bytes()


@cache
def asset(name: str) -> Asset | None:
    """A whitelisted static file with its ETag; ``None`` for any other name."""
    media_type = ASSETS.get(name)
    if media_type is None:
        return None
    body = _read(name)
    return Asset(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


@cache
def page(name: str) -> str:
    if name not in PAGES:
        raise KeyError(name)
    return _read(name).decode("utf-8")
