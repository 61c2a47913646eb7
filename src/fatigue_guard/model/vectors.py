"""Feature vectors drawn uniformly inside the contract ranges, with nulls in optional features.

Not realistic data (use :mod:`fatigue_guard.simulation` for that): these probe every corner of the
input space, including the "missing" branches, which is what an exporter check and a parity test
need on top of realistic vectors.
"""

from __future__ import annotations

import numpy as np

from fatigue_guard.contract.features import (
    FEATURES,
    SLEEP_STAGE_FIELDS,
    SLEEP_STAGE_MAX_TOTAL,
)


def contract_vectors(n: int, *, seed: int = 0, null_share: float = 0.3) -> np.ndarray:
    """``n`` valid contract vectors as float32 in contract order, NaN = missing.

    Each optional feature is null with probability ``null_share``; required ones never are.
    Integer features are whole numbers and deep + REM sleep never exceed 100 %, so every row
    would pass the API's validation.
    """
    rng = np.random.default_rng(seed)
    columns: list[np.ndarray] = []
    for spec in FEATURES:
        values = rng.uniform(spec.minimum, spec.maximum, n)  # [min, max): fine for exclusive
        if spec.integer:
            values = np.floor(values)
        if not spec.required:
            values[rng.uniform(size=n) < null_share] = np.nan
        columns.append(values)
    matrix = np.column_stack(columns)
    names = [spec.name for spec in FEATURES]
    deep, rem = (names.index(name) for name in SLEEP_STAGE_FIELDS)
    total = np.nan_to_num(matrix[:, deep]) + np.nan_to_num(matrix[:, rem])
    # Scale both shares down where they overflow instead of dropping rows: keeps n exact.
    # (0.999: float32 rounding of the two shares must not add back up past 100.)
    over = total > SLEEP_STAGE_MAX_TOTAL
    matrix[over, deep] *= 0.999 * SLEEP_STAGE_MAX_TOTAL / total[over]
    matrix[over, rem] *= 0.999 * SLEEP_STAGE_MAX_TOTAL / total[over]
    out = matrix.astype(np.float32)
    # float32 rounding must not push a value past its bound (local_hour < 24 rounds to 24.0).
    for j, spec in enumerate(FEATURES):
        low, high = np.float32(spec.minimum), np.float32(spec.maximum)
        if spec.maximum_exclusive:
            high = np.nextafter(high, low)
        np.clip(out[:, j], low, high, out=out[:, j])
    return out
