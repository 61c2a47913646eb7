"""The statistics the signals rest on, against known answers."""

from __future__ import annotations

import numpy as np
from scipy import stats as sp

from fatigue_guard.model.stats import (
    benjamini_hochberg,
    beta_binomial_sf,
    bin_counts,
    binned_ks,
    design_effect,
    ks_pvalue,
    minimum_effect_pvalue,
    psi,
    welch_pvalue,
    wilson_interval,
)
from fatigue_guard.monitoring.event_ids import all_distinct


def test_psi_is_zero_for_the_same_shares_and_grows_with_shift() -> None:
    counts = np.array([10.0, 20, 30, 40])
    assert psi(counts, counts * 3) == 0.0
    assert psi(counts, np.array([40.0, 30, 20, 10])) > 0.5


def test_binned_ks_matches_scipy_on_percentile_bins() -> None:
    rng = np.random.default_rng(0)
    ref, cur = rng.normal(size=20_000), rng.normal(0.2, 1, size=20_000)
    edges = np.quantile(ref, np.linspace(0.01, 0.99, 99))
    d = binned_ks(bin_counts(ref, edges), bin_counts(cur, edges))
    exact = sp.ks_2samp(ref, cur).statistic
    assert abs(d - exact) < 0.01
    assert ks_pvalue(d, 20_000, 20_000) < 1e-10


def test_wilson_interval_contains_the_estimate_and_narrows() -> None:
    lo, hi = wilson_interval(80, 100, 1.96)
    assert lo < 0.8 < hi and abs(lo - 0.7112) < 1e-3 and abs(hi - 0.8666) < 1e-3
    lo2, hi2 = wilson_interval(800, 1000, 1.96)
    assert hi2 - lo2 < hi - lo


def test_benjamini_hochberg_step_up() -> None:
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    assert benjamini_hochberg(p, 0.05).tolist() == [True, True] + [False] * 8


def test_design_effect_one_for_independent_rows_large_for_repeats() -> None:
    rng = np.random.default_rng(1)
    users = np.repeat(np.arange(200), 28)
    assert design_effect(users, rng.normal(size=len(users)), 200) < 1.3
    trait = np.repeat(rng.normal(size=200), 28) + 0.1 * rng.normal(size=len(users))
    assert design_effect(users, trait, 200) > 20
    assert design_effect(None, trait, 0) == 1.0


def test_welch_pvalue_matches_scipy_from_moments() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, 12), rng.normal(0.9, 2.5, 30)
    p, df = welch_pvalue(a.mean(), a.var(ddof=1), len(a), b.mean(), b.var(ddof=1), len(b))
    assert abs(p - sp.ttest_ind(a, b, equal_var=False).pvalue) < 1e-10
    assert 12 < df < 40
    # Known exactly on both sides: equal means are no evidence, different ones are certain.
    assert welch_pvalue(1.0, 0.0, 5, 1.0, 0.0, 5)[0] == 1.0
    assert welch_pvalue(1.0, 0.0, 5, 2.0, 0.0, 5)[0] == 0.0
    assert welch_pvalue(1.0, 1.0, 1, 2.0, 1.0, 5)[0] == 1.0  # one value has no spread to judge


def test_beta_binomial_tail_matches_scipy_and_is_wider_than_the_binomial() -> None:
    n, a, b = 120, 0.1 * 100 + 0.5, 0.9 * 100 + 0.5
    for x in (0, 5, 12, 25, 40, 121):
        expected = sp.betabinom.sf(x - 1, n, a, b) if x > 0 else 1.0
        assert abs(beta_binomial_sf(x, n, a, b) - expected) < 1e-9
    # The reference share's own uncertainty fattens the tail against a binomial at that share.
    assert beta_binomial_sf(25, n, a, b) > 5 * sp.binom.sf(24, n, 0.1)
    # With a huge reference it is the binomial.
    big = 1e7
    assert abs(beta_binomial_sf(20, n, 0.1 * big, 0.9 * big) - sp.binom.sf(19, n, 0.1)) < 1e-6


def test_minimum_effect_pvalue_is_the_interval_beyond_the_tolerance() -> None:
    # The 95 % interval 3 +- 1.96 lies beyond a tolerance of 1 exactly when p < 0.025.
    assert abs(minimum_effect_pvalue(2.96, 1.0, 1.0) - 0.025) < 1e-3
    assert minimum_effect_pvalue(-5.0, 1.0, 1.0) < 1e-4  # either direction
    assert minimum_effect_pvalue(0.5, 1.0, 1.0) > 0.5  # inside the tolerance
    assert minimum_effect_pvalue(2.0, 0.0, 1.0) == 0.0
    assert minimum_effect_pvalue(0.5, 0.0, 1.0) == 1.0


def test_bin_counts_equal_a_binary_search_per_value() -> None:
    rng = np.random.default_rng(2)
    values = np.round(rng.lognormal(3.5, 0.5, size=50_000), 1)  # ties on the edges
    values[::17] = np.nan
    for edges in (
        np.unique(np.quantile(values[~np.isnan(values)], np.linspace(0.01, 0.99, 99))),
        np.arange(25.0),  # one bin per integer value
        np.array([1.0, 1.0 + 1e-12, 30.0]),  # edges closer than a grid cell
        np.array([5.0]),
        np.zeros(0),
    ):
        present = values[~np.isnan(values)]
        expected = np.bincount(
            np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1
        )
        assert bin_counts(values, edges).tolist() == expected.tolist()


def test_all_distinct_event_ids() -> None:
    import uuid

    import pyarrow as pa

    ids = [str(uuid.uuid4()) for _ in range(5_000)]
    mixed = ids[:2_500] + [f"{i}-{u}" for i, u in enumerate(ids[2_500:])]  # varying widths
    for column in (ids, mixed):
        chunks = pa.chunked_array([pa.array(column[:3_000]), pa.array(column[3_000:])])
        assert all_distinct(chunks)
        retried = pa.chunked_array([*chunks.chunks, pa.array(column[4_000:4_010])])
        assert not all_distinct(retried)
    assert not all_distinct(pa.chunked_array([pa.array(["a", "bb", "a"])]))
    assert all_distinct(pa.chunked_array([pa.array(["a", "a\x00", ""])]))
