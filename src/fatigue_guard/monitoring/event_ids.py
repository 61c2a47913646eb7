"""Whether a window's event ids are all distinct: exact, without a hash set of a million strings.

A retried batch can overlap another, so the monitor must check ``event_id`` uniqueness before
counting rows. Arrow's hash set of the id strings copies every string into its memo table and
would be the largest single cost of reading a window. Event ids are UUIDs, all of one width, so each
id's bytes are folded into a 64-bit fingerprint with a few vectorised passes, and only ids whose
fingerprint repeats (real duplicates, or a rare collision) are compared as strings. Ids of
varying width are gathered width by width; only ids with nulls or of a large-string type fall
back to the string hash set.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Odd 64-bit multiplier (from splitmix64) that spreads each 8-byte word over the whole hash.
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _fold(rows: np.ndarray) -> np.ndarray:
    """64-bit fingerprint of each row of a ``(n, width)`` uint8 matrix."""
    count, width = rows.shape
    words = -(-width // 8)
    padded = np.zeros((count, words * 8), dtype=np.uint8)
    padded[:, :width] = rows
    hashed = np.full(count, width, dtype=np.uint64)  # ids of other widths differ too
    for word in padded.view(np.uint64).T:  # a handful of columns (5 for a UUID)
        hashed ^= word
        hashed *= _MIX  # wraps modulo 2**64, as intended
        hashed ^= hashed >> np.uint64(29)
    return hashed


def fingerprints(chunk: pa.Array) -> np.ndarray | None:
    """A 64-bit fingerprint per id of a null-free string chunk (else ``None``)."""
    if chunk.null_count or not (pa.types.is_string(chunk.type) or pa.types.is_binary(chunk.type)):
        return None
    count = len(chunk)
    _, offsets_buffer, data_buffer = chunk.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[chunk.offset : chunk.offset + count + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer else np.zeros(0, np.uint8)
    widths = np.diff(offsets)
    if count and np.all(widths == widths[0]):  # the usual case (UUIDs): one reshape, no gather
        return _fold(data[offsets[0] : offsets[-1]].reshape(count, int(widths[0])))
    out = np.empty(count, dtype=np.uint64)
    for width in np.unique(widths):  # ids of a few widths: gather each width's bytes
        rows = np.flatnonzero(widths == width)
        out[rows] = _fold(data[offsets[rows, None] + np.arange(width)])
    return out


def all_distinct(ids: pa.ChunkedArray) -> bool:
    """``True`` when no id occurs twice."""
    parts = [fingerprints(chunk) for chunk in ids.chunks]
    if any(p is None for p in parts):
        return len(pc.unique(ids)) == len(ids)
    prints = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
    # Sorting integers (SIMD) is several times faster than a hash table of them.
    ordered = np.sort(prints)
    repeats = ordered[1:][ordered[1:] == ordered[:-1]]
    if not len(repeats):
        return True
    suspects = ids.filter(pa.array(np.isin(prints, repeats)))
    return len(pc.unique(suspects)) == len(suspects)
