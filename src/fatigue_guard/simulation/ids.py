"""Deterministic UUIDs and user ids, built vectorised (no per-row ``uuid.UUID`` calls)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

# pandas' default string dtype (Arrow-backed, NaN for missing), as ``pd.Series(["a"])`` gets.
STR_DTYPE = pd.StringDtype(storage="pyarrow", na_value=np.nan)

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_DASHES_AFTER = (8, 12, 16, 20)  # hex digits before each dash of the 8-4-4-4-12 form


def random_uuids(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Version-4 UUIDs as ASCII text, ``uint8`` of shape ``(n, 36)``, one row per element of
    ``shape`` in C order (see :func:`text_column` to turn them into strings).

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
    return np.ascontiguousarray(text)


def text_column(ascii_rows: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Fixed-width ASCII rows -> a pandas ``str`` array, built in Arrow (no Python objects)."""
    n, width = ascii_rows.shape
    buffers = [None, pa.py_buffer(np.ascontiguousarray(ascii_rows).tobytes())]
    fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, buffers)
    return pd.array(fixed.cast(pa.binary()).cast(pa.string()), dtype=STR_DTYPE)


def coded_column(codes: np.ndarray, names: list[str]) -> pd.api.extensions.ExtensionArray:
    """Integer codes into ``names`` -> a pandas ``str`` array, decoded in Arrow."""
    dictionary = pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(names))
    return pd.array(dictionary.dictionary_decode(), dtype=STR_DTYPE)


def user_ids(first: int, count: int) -> list[str]:
    """``u00000``-style ids; numbered on from ``first`` so late joiners never clash."""
    width = max(5, len(str(first + count)))
    return [f"u{i:0{width}d}" for i in range(first, first + count)]
