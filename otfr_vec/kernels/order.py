"""Sorts in O(n) expected time for times spread over a known interval.

The engine sorts two kinds of times whose range it knows: a workload block's arrivals
(uniform over the block) and a step's buffered event ends (within the step). A
comparison sort costs O(n log n) and its cost per item grows with the cluster: a
65,536-worker block holds 2.6 M arrivals, a step a few thousand ends. Here the times
are counted into equal buckets over ``[lo, hi)``, then an insertion sort finishes the
order within buckets: O(n) for times spread evenly, as these are.

A time's bucket never decreases as the time grows (each floating-point operation of
:func:`_bucket` is monotone) and the insertion sort runs over the whole array, so the
result is exact whatever the values: :func:`bucket_order` is the permutation of
``np.argsort(t, kind="stable")``, :func:`sort_spread` the array of ``np.sort(x)``. The
bounds only decide the speed. Times bunched into few buckets would make the insertion
sort quadratic; past a budget of moves it gives way to a comparison sort.
"""

import numpy as np

from .jit import alloc_kernel, kernel

MOVES_PER_ITEM = 8  # the insertion sort's budget, in element moves per time
LEAF = 512  # values per coarse bucket of sort_spread: a leaf's fine pass stays in L1


@kernel
def _bucket(x, lo, scale, n):
    """Bucket of ``x`` among ``n`` over ``lo + [0, n / scale)``: monotone in ``x``."""
    v = (x - lo) * scale
    if v >= n:
        return n - 1
    if v > 0.0:  # (NaN and values below lo: bucket 0)
        return int(v)
    return 0


@kernel
def _offsets(x, lo, scale, nb, start):
    """``start[:nb + 1]``: where each of the ``nb`` buckets of ``x`` begins, in bucket
    order (and ``start[nb]`` = ``x.size``)."""
    start[: nb + 1] = 0
    for k in range(x.size):
        start[_bucket(x[k], lo, scale, nb) + 1] += 1
    for j in range(nb):
        start[j + 1] += start[j]


@kernel
def _scatter(x, lo, scale, nb, pos, out):
    """``x`` into ``out`` by bucket, keeping their order within a bucket; ``pos``: each
    bucket's start, advanced past what it received."""
    for k in range(x.size):
        j = _bucket(x[k], lo, scale, nb)
        out[pos[j]] = x[k]
        pos[j] += 1


@kernel
def insertion_sort(a, n, budget):
    """Sort ``a[:n]`` in place by insertion, stopping once it has made more than
    ``budget`` element moves; returns the budget left (negative: ``a`` is unsorted)."""
    for k in range(1, n):
        v = a[k]
        i = k
        while i > 0 and a[i - 1] > v:
            a[i] = a[i - 1]
            i -= 1
        a[i] = v
        budget -= k - i
        if budget < 0:
            return budget
    return budget


@kernel
def _before(t, a, b):
    """Does index ``a`` come before ``b`` in the stable order of ``t``?"""
    return t[a] < t[b] or (t[a] == t[b] and a < b)


@kernel
def _sift_down(t, order, root, end):
    while True:
        c = 2 * root + 1
        if c >= end:
            return
        if c + 1 < end and _before(t, order[c], order[c + 1]):
            c += 1
        if not _before(t, order[root], order[c]):
            return
        order[root], order[c] = order[c], order[root]
        root = c


@kernel
def heap_order(t, order, n):
    """Sort the indices ``order[:n]`` by ``(t[i], i)``, in place: the stable order of
    ``t`` whatever order they start in, in O(n log n) without scratch."""
    for root in range(n // 2 - 1, -1, -1):
        _sift_down(t, order, root, n)
    for end in range(n - 1, 0, -1):
        order[0], order[end] = order[end], order[0]
        _sift_down(t, order, 0, end)


@kernel
def bucket_order_into(t, lo, hi, order, start):
    """``order[:t.size]``: the stable ascending order of ``t`` (a permutation of
    ``range(t.size)``), for times expected in ``[lo, hi)``; any other time (or ``hi <=
    lo``) only costs speed. ``start``: scratch for the buckets' starts (one bucket per
    time where it holds ``t.size + 1``, fewer otherwise). Allocates nothing, so the step
    kernel calls it without Numba's runtime."""
    n = t.size
    if n == 0:
        return
    nb = max(1, min(n, start.size - 1))
    scale = nb / (hi - lo) if hi > lo else 0.0
    _offsets(t, lo, scale, nb, start)
    for k in range(n):  # counting sort by bucket: stable
        j = _bucket(t[k], lo, scale, nb)
        order[start[j]] = k
        start[j] += 1
    budget = MOVES_PER_ITEM * n
    for k in range(1, n):  # within buckets; strict > keeps equal times in order
        o = order[k]
        v = t[o]
        m = k
        while m > 0 and t[order[m - 1]] > v:
            order[m] = order[m - 1]
            m -= 1
        order[m] = o
        budget -= k - m
        if budget < 0:  # bunched times: a comparison sort instead
            heap_order(t, order[:n], n)
            return


@alloc_kernel
def bucket_order(t, lo, hi):
    """:func:`bucket_order_into` into a new array."""
    order = np.empty(t.size, np.int64)
    bucket_order_into(t, lo, hi, order, np.empty(t.size + 1, np.int64))
    return order


@alloc_kernel
def sort_spread(x, lo, hi):
    """``np.sort(x)`` for values expected spread evenly over ``[lo, hi)`` (any other
    value only costs speed): a coarse bucket pass of ``LEAF`` values a bucket in
    expectation, then each bucket sorted in cache by a fine bucket pass and an insertion
    sort. Returns a new array."""
    n = x.size
    out = np.empty(n, x.dtype)
    if n == 0:
        return out
    nc = max(1, n // LEAF)
    scale = nc / (hi - lo) if hi > lo else 0.0
    start = np.empty(nc + 1, np.int64)
    _offsets(x, lo, scale, nc, start)
    _scatter(x, lo, scale, nc, start[:nc].copy(), out)
    width = (hi - lo) / nc if hi > lo else 0.0
    most = 0
    for c in range(nc):
        most = max(most, start[c + 1] - start[c])
    tmp = np.empty(most, x.dtype)
    fine = np.empty(most + 1, np.int64)
    for c in range(nc):
        a, m = start[c], start[c + 1] - start[c]
        if m < 2:
            continue
        seg = out[a : a + m]
        c_lo = lo + c * width
        f = m / width if width > 0.0 else 0.0
        _offsets(seg, c_lo, f, m, fine)  # the same two passes, within the bucket
        _scatter(seg, c_lo, f, m, fine, tmp)
        if insertion_sort(tmp, m, MOVES_PER_ITEM * m) < 0:  # bunched: a comparison sort
            seg[:] = np.sort(seg)
        else:
            seg[:] = tmp[:m]
    return out
