"""The O(n) sorts of kernels/order.py give exactly what NumPy's sorts give, for any
values and bounds (the bounds only decide the speed)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otfr_vec.kernels.order import LEAF, bucket_order, sort_spread

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
values = st.lists(st.one_of(finite, st.sampled_from([0.0, -0.0, 1.0, np.inf, -np.inf])))


@settings(deadline=None, max_examples=300)
@given(values, finite, finite)
def test_bucket_order_is_the_stable_argsort(xs, lo, hi):
    t = np.array(xs, dtype=np.float64)
    assert np.array_equal(bucket_order(t, lo, hi), np.argsort(t, kind="stable"))


@settings(deadline=None, max_examples=300)
@given(values, finite, finite)
def test_sort_spread_is_np_sort(xs, lo, hi):
    x = np.array(xs, dtype=np.float64)
    got = sort_spread(x, lo, hi)
    assert got.dtype == x.dtype and np.array_equal(got, np.sort(x))


@pytest.mark.parametrize("n", [2, LEAF - 1, LEAF, 3 * LEAF + 5, 50_000])
def test_spread_times_and_their_edge_cases(n):
    """Uniform times, as the engine sorts them (a block's arrivals, a step's ends), then
    ties, bunched times (past the insertion budget) and times outside the bounds."""
    g = np.random.default_rng(n)
    lo, hi = 30.0, 40.0
    cases = {
        "uniform": lo + g.random(n) * (hi - lo),
        "ties": lo + g.integers(0, 7, n) * 0.5,
        "bunched": lo + g.random(n) * 1e-9,  # one bucket: the insertion sort would be n^2
        "outside": g.normal(35.0, 20.0, n),
        "reversed": np.sort(lo + g.random(n) * (hi - lo))[::-1].copy(),
        "reversed bunch": lo + np.linspace(1.0, 0.0, n) * 1e-12,  # past the budget at once
    }
    for name, t in cases.items():
        assert np.array_equal(bucket_order(t, lo, hi), np.argsort(t, kind="stable")), name
        assert np.array_equal(sort_spread(t, lo, hi), np.sort(t)), name
