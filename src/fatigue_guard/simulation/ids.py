"""Deterministic UUIDs and user ids, built vectorised (no per-row ``uuid.UUID`` calls)."""

from __future__ import annotations

import numpy as np

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_DASHES_AFTER = (8, 12, 16, 20)  # hex digits before each dash of the 8-4-4-4-12 form


def random_uuids(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Version-4 UUID strings, one per element of ``shape``, flattened in C order.

    Random bytes come from ``rng``, so the ids are reproducible from the seed.
    """
    n = int(np.prod(shape))
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    digits = np.empty((n, 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX[raw >> 4]
    digits[:, 1::2] = _HEX[raw & 0x0F]
    parts = np.split(digits, _DASHES_AFTER, axis=1)
    dash = np.full((n, 1), ord("-"), dtype=np.uint8)
    text = np.concatenate(
        [parts[0], dash, parts[1], dash, parts[2], dash, parts[3], dash, parts[4]], axis=1
    )
    return np.ascontiguousarray(text).view("S36").ravel().astype("U36")


def user_ids(first: int, count: int) -> np.ndarray:
    """``u00000``-style ids; numbered on from ``first`` so late joiners never clash."""
    width = max(5, len(str(first + count)))
    return np.array([f"u{i:0{width}d}" for i in range(first, first + count)], dtype=object)
