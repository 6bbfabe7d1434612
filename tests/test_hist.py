"""The histogram bin by table lookup equals the logarithm's definition, ulp for ulp."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from otfr_vec.kernels.hist import _thresholds, hist_bin, hist_bin_log, hist_of
from otfr_vec.kernels.structs import HIST_BINS, HIST_LO, HIST_PER_DECADE


@njit
def _both(xs):
    out = np.empty((2, xs.size), np.int64)
    for i in range(xs.size):
        out[0, i] = hist_bin(xs[i])
        out[1, i] = hist_bin_log(xs[i])
    return out


def _agree(xs):
    got, want = _both(np.asarray(xs, np.float64))
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, [(xs[i], got[i], want[i]) for i in bad[:5]]


def test_hand_checked_bins():
    # bin k covers [HIST_LO * 10**(k/200), HIST_LO * 10**((k+1)/200))
    x = np.array([-1.0, 0.0, np.nan, 1e-9, HIST_LO, 1.0, 10.0, 1e9])
    per = HIST_PER_DECADE
    got, want = _both(x)
    assert list(got) == [0, 0, 0, 0, 0, 4 * per, 5 * per, HIST_BINS - 1]
    assert list(got) == list(want)


def test_every_threshold_and_its_neighbours():
    t = _thresholds()[1:]
    assert np.all(np.diff(t) > 0)
    bits = t.view(np.int64)
    near = np.concatenate([(bits + d).view(np.float64) for d in range(-64, 65)])
    _agree(near)
    got, _ = _both(t)
    assert list(got) == list(range(1, HIST_BINS))  # each threshold opens its own bin
    below, _ = _both((bits - 1).view(np.float64))
    assert list(below) == list(range(0, HIST_BINS - 1))


def test_a_million_log_uniform_values():
    rng = np.random.default_rng(7)
    _agree(10 ** rng.uniform(-8, 8, 1_000_000))


@settings(max_examples=2000, deadline=None)
@given(st.floats(min_value=0.0, max_value=1e12, allow_nan=False, allow_subnormal=True))
def test_any_value(x):
    _agree(np.array([x]))


def test_hist_of_counts_finite_values_as_the_kernel_bins():
    x = np.array([1.0, 1.0, np.inf, np.nan, -np.inf, 0.0, 10.0])
    h = hist_of(x)
    assert h.sum() == 4
    assert h[0] == 1 and h[4 * HIST_PER_DECADE] == 2 and h[5 * HIST_PER_DECADE] == 1
