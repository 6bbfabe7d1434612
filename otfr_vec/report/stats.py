"""Intervals over a handful of seeds, with honest coverage.

Sweeps run 2-5 seeds per point, far too few for a percentile bootstrap: resampling 4
values gives at most 35 distinct means, and its interval is far too narrow (at r = 0.2
the severity grid's bootstrap gave [12.9, 18.3] % where the t-based interval below gives
[9.8, 20.5] %). Both intervals here are Student-t based, exact for normal seed-to-seed
variation: the mean of a metric over seeds, and Fieller's interval for a ratio of
pooled counts (a failure reduction).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats

LEVEL = 0.95


def t_quantile(n: int, level: float = LEVEL) -> float:
    """Two-sided Student t quantile for a sample of ``n`` (n - 1 degrees of freedom)."""
    return float(stats.t.ppf(0.5 + level / 2, n - 1))


class Mean(NamedTuple):
    mean: float
    half: float  # half-width of the 95 % t interval; NaN below two values
    n: int  # finite values used


def mean_ci(values) -> Mean:
    """Mean over seeds and the half-width of its 95 % t interval; NaN values are holes
    (unfinished or lost cells) and are not counted in ``n``."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return Mean(math.nan, math.nan, 0)
    if v.size == 1:
        return Mean(float(v[0]), math.nan, 1)
    return Mean(
        float(v.mean()), t_quantile(v.size) * float(v.std(ddof=1)) / math.sqrt(v.size), v.size
    )


class Reduction(NamedTuple):
    point: float  # 1 - sum(new) / sum(base)
    lo: float  # 95 % interval; -inf / +inf when unbounded, NaN below two seeds
    hi: float
    n: int  # seeds with both counts finite


def reduction_ci(new, base) -> Reduction:
    """Failure reduction ``1 - sum(new) / sum(base)`` over paired seeds, with Fieller's
    95 % interval.

    Pooled over seeds (a ratio of sums, not a mean of per-seed ratios, which is unstable
    when one seed has almost no failures). Fieller's interval inverts the t test of
    ``mean(new) - R mean(base) = 0`` for the ratio ``R``, seeds paired (same random
    numbers for both schedulers); it is asymmetric where it should be and unbounded when
    the baseline's failures are not distinguishable from zero over these seeds. A seed
    missing from either side is dropped from both.
    """
    h = np.asarray(new, dtype=float).ravel()
    b = np.asarray(base, dtype=float).ravel()
    ok = np.isfinite(h) & np.isfinite(b)
    h, b = h[ok], b[ok]
    n = int(h.size)
    if n == 0 or b.sum() <= 0:
        return Reduction(math.nan, math.nan, math.nan, n)
    point = 1.0 - h.sum() / b.sum()
    if n < 2:
        return Reduction(float(point), math.nan, math.nan, n)
    q = t_quantile(n) ** 2 / n
    cov = np.cov(h, b)  # ddof 1
    a = b.mean() ** 2 - q * cov[1, 1]
    mid = h.mean() * b.mean() - q * cov[0, 1]
    c = h.mean() ** 2 - q * cov[0, 0]
    disc = mid * mid - a * c
    if a <= 0 or disc < 0:  # the baseline's mean is not significantly above zero
        return Reduction(float(point), -math.inf, math.inf, n)
    root = math.sqrt(disc)
    ratio_lo, ratio_hi = (mid - root) / a, (mid + root) / a
    # failures are never negative, so neither is the ratio: truncating the interval to
    # the parameter space keeps its coverage
    return Reduction(float(point), float(1.0 - ratio_hi), float(1.0 - max(ratio_lo, 0.0)), n)


__all__ = ["LEVEL", "Mean", "Reduction", "mean_ci", "reduction_ci", "t_quantile"]
