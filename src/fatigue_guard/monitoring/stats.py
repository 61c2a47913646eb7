"""Vectorised statistics the monitor needs: binned distances, tests, intervals, FDR control.

Everything works on bin counts or summary moments rather than raw rows, so the reference side is
a compact profile and the live side costs one ``searchsorted`` per column. At monitoring sizes a
p-value alone flags meaningless differences; callers pair each test with an effect size.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

# Additive smoothing of bin shares for PSI: an empty bin would make the log infinite.
PSI_EPSILON = 1e-4


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of the present values in the bins ``(-inf, e0], (e0, e1], ..., (e_last, inf)``."""
    present = values[~np.isnan(values)]
    index = np.searchsorted(edges, present, side="left")
    return np.bincount(index, minlength=len(edges) + 1).astype(np.float64)


def psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Population stability index between two binnings (shares smoothed by ``PSI_EPSILON``)."""
    ref = _shares(reference_counts)
    cur = _shares(current_counts)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    shares = counts / total if total > 0 else np.full(len(counts), 1.0 / len(counts))
    shares = shares + PSI_EPSILON
    return shares / shares.sum()


def binned_ks(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance evaluated at the bin edges (exact there, a lower bound
    between them; with 100 quantile bins the difference is negligible)."""
    ref = np.cumsum(reference_counts) / max(reference_counts.sum(), 1.0)
    cur = np.cumsum(current_counts) / max(current_counts.sum(), 1.0)
    return float(np.max(np.abs(cur - ref)))


def ks_pvalue(distance: float, n_reference: float, n_current: float) -> float:
    """Asymptotic two-sample KS p-value for ``distance`` with these (effective) sample sizes."""
    if n_reference <= 0 or n_current <= 0:
        return 1.0
    effective = n_reference * n_current / (n_reference + n_current)
    return float(min(1.0, max(0.0, special.kolmogorov(math.sqrt(effective) * distance))))


def binned_wasserstein(
    reference_counts: np.ndarray, current_counts: np.ndarray, edges: np.ndarray
) -> float:
    """Wasserstein-1 distance between two binned distributions (integral of |F_cur - F_ref|
    over the interior bins; the open tails carry no width)."""
    if len(edges) < 2:
        return 0.0
    ref = np.cumsum(reference_counts)[:-1] / max(reference_counts.sum(), 1.0)
    cur = np.cumsum(current_counts)[:-1] / max(current_counts.sum(), 1.0)
    # F is constant between consecutive edges at its value after the left edge.
    widths = np.diff(edges)
    return float(np.sum(np.abs(cur[:-1] - ref[:-1]) * widths))


def chi2_pvalue(
    reference_counts: np.ndarray, current_counts: np.ndarray, deff: float = 1.0
) -> float:
    """Chi-squared test of homogeneity of two count vectors (bins empty on both sides dropped);
    the statistic is divided by ``deff`` for clustered rows (first-order Rao-Scott)."""
    table = np.vstack([reference_counts, current_counts])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected)) / max(deff, 1.0)
    return float(stats.chi2.sf(statistic, table.shape[1] - 1))


def two_proportion_pvalue(successes_a: float, n_a: float, successes_b: float, n_b: float) -> float:
    """Two-sided z-test p-value that two proportions are equal (pooled variance)."""
    if n_a <= 0 or n_b <= 0:
        return 1.0
    pooled = (successes_a + successes_b) / (n_a + n_b)
    variance = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    if variance <= 0:
        return 1.0 if successes_a / n_a == successes_b / n_b else 0.0
    z = (successes_a / n_a - successes_b / n_b) / math.sqrt(variance)
    return float(2 * stats.norm.sf(abs(z)))


def mean_difference_interval(
    mean_a: float, var_a: float, n_a: float, mean_b: float, var_b: float, n_b: float, z: float
) -> tuple[float, float, float]:
    """``(a - b, lower, upper)``: Welch's normal interval for a difference of means."""
    diff = mean_a - mean_b
    if n_a <= 1 or n_b <= 1:
        return diff, -math.inf, math.inf
    half = z * math.sqrt(var_a / n_a + var_b / n_b)
    return diff, diff - half, diff + half


def wilson_interval(successes: float, n: float, z: float) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; ``(0, 1)`` when ``n`` is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def benjamini_hochberg(pvalues: np.ndarray, rate: float) -> np.ndarray:
    """Boolean mask of the hypotheses rejected at false discovery ``rate`` (BH step-up)."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    if m == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(p)
    passed = p[order] <= rate * np.arange(1, m + 1) / m
    rejected = np.zeros(m, dtype=bool)
    if passed.any():
        rejected[order[: np.flatnonzero(passed).max() + 1]] = True
    return rejected


def grouped_moments(
    codes: np.ndarray, values: np.ndarray, groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group ``(count, mean, variance)`` of the present values; ``codes`` index groups.

    One ``bincount`` per moment: no Python loop over rows or groups.
    """
    # Weighted bincounts over all rows (missing values weigh 0) avoid copying the present
    # subset; one pass each for count, sum and sum of squares.
    present = ~np.isnan(values)
    v = np.where(present, values, 0.0)
    n = np.bincount(codes, weights=present, minlength=groups)[:groups]
    total = np.bincount(codes, weights=v, minlength=groups)[:groups]
    squares = np.bincount(codes, weights=v * v, minlength=groups)[:groups]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
        # Sum of squares about the mean; float64 keeps the cancellation harmless at these
        # scales (values up to 1e5, a few million rows per group).
        centred = np.maximum(squares - n * np.where(n > 0, mean, 0.0) ** 2, 0.0)
        var = np.where(n > 1, centred / np.maximum(n - 1, 1), np.nan)
    return n, mean, var


def design_effect(codes: np.ndarray | None, values: np.ndarray, groups: int) -> float:
    """Kish design effect ``1 + (m0 - 1) * rho`` of ``values`` clustered by ``codes`` (users).

    Rows of one user are not independent: the four moments of a day share the night's sleep
    features, and 7- and 14-day rolling features barely move within a week. Tests that treat
    every row as independent then see significance in week-to-week noise. Dividing sample sizes
    by this factor (intra-class correlation ``rho`` from one-way ANOVA, ``m0`` the adjusted mean
    rows per user) gives the effective sample size. 1.0 when there is nothing to cluster by.
    """
    if codes is None or groups < 2:
        return 1.0
    n, mean, var = grouped_moments(codes, values.astype(np.float64, copy=False), groups)
    has = n > 0
    n, mean, var = n[has], mean[has], var[has]
    k, total = len(n), float(n.sum())
    if k < 2 or total <= k:
        return 1.0
    grand = float(np.sum(n * mean) / total)
    ssb = float(np.sum(n * (mean - grand) ** 2))
    ssw = float(np.nansum((n - 1) * var))
    msb, msw = ssb / (k - 1), ssw / (total - k)
    m0 = (total - float(np.sum(n * n)) / total) / (k - 1)
    denominator = msb + (m0 - 1) * msw
    if denominator <= 0:
        return 1.0
    rho = min(max((msb - msw) / denominator, 0.0), 1.0)
    return max(1.0, 1.0 + (m0 - 1) * rho)
