"""Vectorised statistics the monitor needs: binned distances, tests, intervals, FDR control.

Everything works on bin counts or summary moments rather than raw rows, so the reference side is
a compact profile and the live side costs a few vectorised passes per column. At monitoring sizes
a p-value alone flags meaningless differences; callers pair each test with an effect size.

Distributions come from ``scipy.special`` rather than ``scipy.stats``: the same functions
(``stats.norm.sf`` and ``stats.chi2.sf`` call ``ndtr`` and ``chdtrc``), without the second of
start-up that importing ``scipy.stats`` costs every CLI run.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

# Additive smoothing of bin shares for PSI: an empty bin would make the log infinite.
PSI_EPSILON = 1e-4
# Cells of the uniform grid that replaces a binary search per value in bin_counts.
_GRID_CELLS = 4096


def normal_sf(z: float) -> float:
    """Upper tail of the standard normal (``scipy.stats.norm.sf``)."""
    return float(special.ndtr(-z))


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of the present values in the bins ``(-inf, e0], (e0, e1], ..., (e_last, inf)``.

    Exactly ``bincount(searchsorted(edges, values, side="left"))``, about twice as fast: a
    binary search per value mispredicts a branch at every step, so each value is first placed
    in a cell of a uniform grid over ``[e0, e_last]`` by arithmetic. The cell index is a
    monotone function of the value (rounding and clipping are monotone), so every edge in an
    earlier cell is below the value and every edge in a later cell above it; only the edges of
    the value's own cell need comparing. With one edge per cell that is a single comparison;
    the rare values in a cell holding several edges fall back to ``searchsorted``.
    """
    present = values[~np.isnan(values)]
    minlength = len(edges) + 1
    lo, hi = (float(edges[0]), float(edges[-1])) if len(edges) else (0.0, 0.0)
    scale = _GRID_CELLS / (hi - lo) if hi > lo else math.inf
    if len(edges) < 2 or not math.isfinite(scale):
        index = np.searchsorted(edges, present, side="left")
        return np.bincount(index, minlength=minlength).astype(np.float64)

    def cell(x: np.ndarray) -> np.ndarray:
        position = (x - lo) * scale
        np.clip(position, 0, _GRID_CELLS - 1, out=position)
        return position.astype(np.intp)

    edge_cells = cell(edges)
    per_cell = np.bincount(edge_cells, minlength=_GRID_CELLS)
    before = np.cumsum(per_cell) - per_cell  # edges in earlier cells
    first_edge = np.full(_GRID_CELLS, np.inf)  # inf: no edge, nothing to compare
    first_edge[edge_cells[::-1]] = edges[::-1]
    cells = cell(present)
    index = before[cells] + (present > first_edge[cells])
    crowded = np.flatnonzero(per_cell[cells] > 1)
    if len(crowded):
        index[crowded] = np.searchsorted(edges, present[crowded], side="left")
    return np.bincount(index, minlength=minlength).astype(np.float64)


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
    return float(special.chdtrc(table.shape[1] - 1, statistic))


def two_proportion_pvalue(successes_a: float, n_a: float, successes_b: float, n_b: float) -> float:
    """Two-sided z-test p-value that two proportions are equal (pooled variance)."""
    if n_a <= 0 or n_b <= 0:
        return 1.0
    pooled = (successes_a + successes_b) / (n_a + n_b)
    variance = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    if variance <= 0:
        return 1.0 if successes_a / n_a == successes_b / n_b else 0.0
    z = (successes_a / n_a - successes_b / n_b) / math.sqrt(variance)
    return 2 * normal_sf(abs(z))


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


def grouped_sums(
    codes: np.ndarray, values: np.ndarray, groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group ``(count, sum, sum of squares)`` of the present values; ``codes`` index groups.

    One weighted ``bincount`` per sum (missing values weigh 0): no Python loop over rows or
    groups, and sums are additive, so they can be re-aggregated to coarser groups exactly.
    """
    present = ~np.isnan(values)
    v = np.where(present, values, 0.0)
    n = np.bincount(codes, weights=present, minlength=groups)[:groups]
    total = np.bincount(codes, weights=v, minlength=groups)[:groups]
    squares = np.bincount(codes, weights=v * v, minlength=groups)[:groups]
    return n, total, squares


def moments_from_sums(
    n: np.ndarray, total: np.ndarray, squares: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(count, mean, variance)`` per group from :func:`grouped_sums`-style sums (NaN when
    a group has too few values)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
        # Sum of squares about the mean; float64 keeps the cancellation harmless at these
        # scales (values up to 1e5, a few million rows per group).
        centred = np.maximum(squares - n * np.where(n > 0, mean, 0.0) ** 2, 0.0)
        var = np.where(n > 1, centred / np.maximum(n - 1, 1), np.nan)
    return n, mean, var


def grouped_moments(
    codes: np.ndarray, values: np.ndarray, groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group ``(count, mean, variance)`` of the present values; ``codes`` index groups."""
    return moments_from_sums(*grouped_sums(codes, values, groups))


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
    return design_effect_from_moments(
        *grouped_moments(codes, values.astype(np.float64, copy=False), groups)
    )


def design_effect_from_moments(n: np.ndarray, mean: np.ndarray, var: np.ndarray) -> float:
    """:func:`design_effect` from per-user ``(count, mean, variance)`` (groups with no value
    are ignored)."""
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


def welch_pvalue(
    mean_a: float, var_a: float, n_a: float, mean_b: float, var_b: float, n_b: float
) -> tuple[float, float]:
    """``(p, df)``: two-sided Welch t-test that two means are equal, from summary moments.

    Student's t with the Welch-Satterthwaite degrees of freedom rather than the normal: a
    segment may hold only twenty people, where the normal tail is several times too thin. With
    no spread on either side the means are known exactly: p is 0 when they differ.
    """
    if n_a < 2 or n_b < 2 or not (math.isfinite(mean_a) and math.isfinite(mean_b)):
        return 1.0, 0.0
    va, vb = max(var_a, 0.0) / n_a, max(var_b, 0.0) / n_b
    se2 = va + vb
    if se2 <= 0:
        return (1.0 if mean_a == mean_b else 0.0), math.inf
    df = se2 * se2 / (va * va / (n_a - 1) + vb * vb / (n_b - 1))
    t = abs(mean_a - mean_b) / math.sqrt(se2)
    return float(min(1.0, 2 * special.stdtr(df, -t))), float(df)


def minimum_effect_pvalue(difference: float, standard_error: float, tolerance: float) -> float:
    """One-sided p-value that ``|difference|`` exceeds ``tolerance`` (a minimum-effect test).

    Below 0.025 exactly when the 95 % interval of the difference lies wholly beyond the
    tolerance; as a p-value it can join the run's false-discovery control.
    """
    if not math.isfinite(difference) or standard_error <= 0 or not math.isfinite(standard_error):
        return 1.0 if abs(difference) <= tolerance or not math.isfinite(difference) else 0.0
    return normal_sf((abs(difference) - tolerance) / standard_error)


def beta_binomial_sf(successes: float, n: float, a: float, b: float) -> float:
    """``P(X >= successes)`` for ``X ~ BetaBinomial(n, a, b)``.

    The predictive distribution of a count among ``n`` new units when the rate is only known
    from a reference sample (posterior ``Beta(a, b)``): the reference's own sampling error widens
    the tail, which a binomial with the rate taken as exact would ignore.
    """
    n = round(n)
    x = max(math.ceil(successes - 1e-9), 0)
    if x <= 0:
        return 1.0
    if x > n or a <= 0 or b <= 0:
        return 0.0
    k = np.arange(x, n + 1, dtype=np.float64)
    log_pmf = (
        special.gammaln(n + 1)
        - special.gammaln(k + 1)
        - special.gammaln(n - k + 1)
        + special.betaln(k + a, n - k + b)
        - special.betaln(a, b)
    )
    return float(min(1.0, np.exp(log_pmf).sum()))
