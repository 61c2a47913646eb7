"""Token buckets: per device key (requests, sync events), per client address (refused keys).

A request is let in while its bucket holds a token. What it turns out to cost beyond that (the
events of a sync, a key that was refused) is then charged even if the bucket goes into debt: a
thousand-event sync still goes through once, and the key waits until those events are paid for
at the sustained rate. Without debt a request larger than the burst could never pass; without
charging, one request would buy any amount of work.
"""

from __future__ import annotations

import ipaddress
import threading
import time

# Buckets kept at most; past it, the full ones (worth the same as none) are dropped, and if that
# is not enough, all: many distinct keys or addresses must not grow memory without bound.
MAX_BUCKETS = 100_000


class TokenBuckets:
    """``rate`` tokens per second sustained, ``burst`` at once, per bucket name."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, as of)
        self._lock = threading.Lock()

    def _tokens(self, name: str, now: float) -> float:
        tokens, last = self._buckets.get(name, (self.burst, now))
        return min(self.burst, tokens + (now - last) * self.rate)

    def acquire(self, name: str, cost: float = 1.0) -> float:
        """Take ``cost`` tokens: 0.0 when allowed, else the seconds until a retry can succeed."""
        now = time.monotonic()
        with self._lock:
            tokens = self._tokens(name, now)
            if tokens >= cost:
                self._store(name, tokens - cost, now)
                return 0.0
            self._store(name, tokens, now)
            return (cost - tokens) / self.rate

    def wait(self, name: str) -> float:
        """Seconds until the bucket holds a token again (0.0: it does now); takes nothing."""
        now = time.monotonic()
        with self._lock:
            return max(0.0, (1.0 - self._tokens(name, now)) / self.rate)

    def charge(self, name: str, cost: float) -> None:
        """Take ``cost`` tokens unconditionally; the bucket may go into debt."""
        if cost <= 0:
            return
        now = time.monotonic()
        with self._lock:
            self._store(name, self._tokens(name, now) - cost, now)

    def _store(self, name: str, tokens: float, now: float) -> None:
        if name not in self._buckets and len(self._buckets) >= MAX_BUCKETS:
            self._prune(now)
        self._buckets[name] = (tokens, now)

    def _prune(self, now: float) -> None:
        for name, (tokens, last) in list(self._buckets.items()):
            if tokens + (now - last) * self.rate >= self.burst:
                del self._buckets[name]
        if len(self._buckets) >= MAX_BUCKETS:
            self._buckets.clear()


def address_bucket(host: str | None) -> str:
    """The bucket of a client address. An IPv6 client is given a whole /64 and can pick any
    address in it, so the /64 is one bucket; an IPv4-mapped address is its IPv4 address."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return host
