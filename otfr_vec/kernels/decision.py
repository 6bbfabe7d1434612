"""Routing decisions in O(log N): a min tournament tree over one group of targets.

:func:`.scoring.argmin_score` scans every target (O(N)); :func:`.scoring.argmin_pods`
keeps one minimum per pod (O(pods + k)). Here a bottom-up segment tree keeps the
minimum of ``v_j = count_j * scale + base_j`` over every power-of-two block of targets:
a router's ``count_j += 1`` costs one leaf-to-root walk (:func:`tree_set`), a new step's
prices one O(N) rebuild (:func:`tree_build`), and a decision O(log N) (:func:`tree_argmin`).

The path cost is the same for every target outside the home pod, so the best score is
``min(min over the home range, min over the rest + path)``, which equals ``min(min over
the home range, min over all + path)`` (one range query); ``fl(v + path)`` is monotone
in ``v``, so this is exactly the minimum the full scan finds, rounding included. The
winner is then the first target in cyclic order from ``lo + start % n`` whose score
equals that minimum, found by a descent that skips blocks whose minimum is too high
(AtCoder's ``max_right``): the same target :func:`.scoring.argmin_score` picks, ties
included.

Layout: targets ``[lo, hi)`` are leaves ``size .. size + n - 1`` of ``tree`` (length
``2 * size``, ``size`` the power of two >= n), node ``i`` the minimum of ``2i`` and
``2i + 1``; leaves past ``n`` hold ``inf``.
"""

import numpy as np

from .jit import inline_kernel, kernel


def tree_size(n: int) -> int:
    """Length of the tree array for ``n`` targets (allocate it outside the kernels)."""
    size = 1
    while size < n:
        size *= 2
    return 2 * size


@kernel
def tree_build(tree, lo, hi, count, scale, base):
    """Every leaf from ``count`` and ``base``, then every inner node: O(N)."""
    size = tree.size >> 1
    n = hi - lo
    for i in range(size):
        tree[size + i] = count[lo + i] * scale + base[lo + i] if i < n else np.inf
    for i in range(size - 1, 0, -1):
        tree[i] = min(tree[2 * i], tree[2 * i + 1])


@inline_kernel
def tree_set(tree, lo, count, scale, base, j):
    """Target ``j``'s count or base changed: refresh its leaf and its ancestors."""
    size = tree.size >> 1
    i = size + j - lo
    tree[i] = count[j] * scale + base[j]
    i >>= 1
    while i >= 1:
        m = min(tree[2 * i], tree[2 * i + 1])
        if tree[i] == m:
            break  # ancestors above are unchanged too
        tree[i] = m
        i >>= 1


@inline_kernel
def tree_min(tree, a, b):
    """Minimum of leaves ``[a, b)`` (relative indices), ``inf`` when empty."""
    size = tree.size >> 1
    m = np.inf
    a += size
    b += size
    while a < b:
        if a & 1:
            m = min(m, tree[a])
            a += 1
        if b & 1:
            b -= 1
            m = min(m, tree[b])
        a >>= 1
        b >>= 1
    return m


@inline_kernel
def tree_first(tree, a, add, best):
    """First leaf ``>= a`` whose ``v + add <= best``; ``size`` if there is none."""
    size = tree.size >> 1
    if a >= size:
        return size
    i = a + size
    while True:
        while i & 1 == 0:
            i >>= 1
        if tree[i] + add <= best:  # the answer is inside block i: go down to it
            while i < size:
                i *= 2
                if tree[i] + add > best:
                    i += 1
            return i - size
        i += 1
        if i & (i - 1) == 0:  # walked off the right end
            return size


@inline_kernel
def tree_argmin(tree, lo, hi, hlo, hhi, path, start):
    """Index in ``[lo, hi)`` that :func:`.scoring.argmin_score` returns for this score.

    ``[hlo, hhi)``: the targets of the home pod (no path cost); every other target pays
    ``path`` (>= 0). ``start``: the seeded tie-break offset.
    """
    n = hi - lo
    h0 = hlo - lo
    h1 = hhi - lo
    # min(home, rest + path) == min(home, root + path): if the root's minimum lies outside
    # the home range it is the rest's; if inside, home <= rest <= rest + path anyway
    best = min(tree_min(tree, h0, h1), tree[1] + path)
    k0 = start % n
    # cyclic order from k0: [k0, n) then [0, k0), each cut into home / not-home pieces
    for seg in range(2):
        a = k0 if seg == 0 else 0
        end = n if seg == 0 else k0
        while a < end:
            if a < h0:
                b = min(end, h0)
                add = path
            elif a < h1:
                b = min(end, h1)
                add = 0.0
            else:
                b = end
                add = path
            r = tree_first(tree, a, add, best)
            if r < b:
                return lo + r
            a = b
    return lo + k0  # not reached: some target holds the minimum
