"""Routing decisions in O(log N): a min tournament tree over one group of targets.

:func:`.scoring.argmin_score` scans every target (O(N)); :func:`.scoring.argmin_pods`
keeps one minimum per pod (O(pods + k)). Here an 8-ary tree keeps the minimum of
``v_j = count_j * scale + base_j`` over blocks of 8, 64, 512, ... targets: a router's
``count_j += 1`` costs one leaf-to-root walk (:func:`tree_set`), a new step's prices one
O(N) rebuild (:func:`tree_build`), and a decision O(log N) (:func:`tree_argmin`). Eight
siblings fill one cache line, so a walk makes log8 N dependent loads where a binary tree
makes log2 N: 4 levels instead of 10 at 1024 targets, 6 instead of 16 at 65,536.

The path cost is the same for every target outside the home pod, so the best score is
``min(min over the home range, min over the rest + path)``, which equals ``min(min over
the home range, min over all + path)`` (one range query); ``fl(v + path)`` is monotone
in ``v``, so this is exactly the minimum the full scan finds, rounding included. The
winner is then the first target in cyclic order from ``lo + start % n`` whose score
equals that minimum, found by a descent that skips blocks whose minimum is too high
(AtCoder's ``max_right``): the same target :func:`.scoring.argmin_score` picks, ties
included.

Layout, for ``n`` targets: ``P = c * 8**(D - 1)`` leaves (``c`` in 1..8: the least such
``P >= n``; leaves past ``n`` hold ``inf``); level ``t`` (0 the top, ``D - 1`` the
leaves) holds ``c * 8**t`` nodes. The levels are stored top first from index
``s = 16 - c``: the top level fills ``[s, 16)`` and every group of 8 siblings starts at a
multiple of 8. With ``K = 14 - c``, node ``x``'s children are ``8 (x - K) .. 8 (x - K) +
7`` and node ``y``'s parent is ``y // 8 + K``. :func:`tree_build` writes the shape into
the array's unused head: ``tree[0] = K``, ``tree[1]`` the first leaf, ``tree[2] = P``.
"""

import numpy as np

from .jit import inline_kernel, kernel


@kernel
def _shape(n):
    """(``8 ** (D - 1)``, ``c``) of the tree over ``n`` targets."""
    p = 1
    while 8 * p < n:
        p *= 8
    return p, max(1, (n + p - 1) // p)


def tree_size(n: int) -> int:
    """Length of the tree array for ``n`` targets (allocate it outside the kernels)."""
    p, c = _shape(n)
    return 16 + 8 * c * (p - 1) // 7


@inline_kernel
def _min8(tree, b):
    """Minimum of the eight siblings ``tree[b : b + 8]``."""
    v = tree[b]
    for q in range(1, 8):
        v = min(v, tree[b + q])
    return v


@kernel
def tree_build(tree, lo, hi, count, scale, base):
    """The shape, every leaf from ``count`` and ``base``, then every inner node: O(N)."""
    n = hi - lo
    p, c = _shape(n)
    k = 14 - c
    first = 16 - c + c * (p - 1) // 7
    size = c * p
    tree[0] = k
    tree[1] = first
    tree[2] = size
    for i in range(size):
        tree[first + i] = count[lo + i] * scale + base[lo + i] if i < n else np.inf
    for y in range(first - 1, 15 - c, -1):  # inner nodes, after their children
        tree[y] = _min8(tree, 8 * (y - k))


@inline_kernel
def tree_set(tree, lo, count, scale, base, j):
    """Target ``j``'s count or base changed: refresh its leaf and its ancestors."""
    k = int(tree[0])
    y = int(tree[1]) + j - lo
    tree[y] = count[j] * scale + base[j]
    while y >= 16:  # below the top level
        v = _min8(tree, y & -8)  # y and its siblings
        y = (y >> 3) + k
        if tree[y] == v:
            break  # ancestors above are unchanged too
        tree[y] = v


@inline_kernel
def tree_top(tree):
    """Minimum over every target."""
    v = np.inf
    for y in range(int(tree[0]) + 2, 16):
        v = min(v, tree[y])
    return v


@inline_kernel
def tree_min(tree, a, b):
    """Minimum of leaves ``[a, b)`` (relative indices), ``inf`` when empty."""
    k = int(tree[0])
    first = int(tree[1])
    m = np.inf
    a += first
    b += first
    while a < b:
        if a < 16:  # the top level
            for y in range(a, b):
                m = min(m, tree[y])
            break
        while a < b and a & 7:
            m = min(m, tree[a])
            a += 1
        while a < b and b & 7:
            b -= 1
            m = min(m, tree[b])
        a = (a >> 3) + k
        b = (b >> 3) + k
    return m


@inline_kernel
def tree_first(tree, a, add, best):
    """First leaf ``>= a`` whose ``v + add <= best``; the leaf count ``P`` if none."""
    k = int(tree[0])
    first = int(tree[1])
    size = int(tree[2])
    if a >= size:
        return size
    y = first + a
    end = first + size  # the end of y's level
    while True:
        g = min((y | 7) + 1, end)  # the end of y's group of siblings
        while y < g:
            if tree[y] + add <= best:  # the answer is inside block y: go down to it
                while y < first:
                    b = 8 * (y - k)
                    q = 7  # the first child that qualifies (one does: it holds y's min)
                    for r in range(6, -1, -1):
                        if tree[b + r] + add <= best:
                            q = r
                    y = b + q
                return y - first
            y += 1
        if end <= 16:  # the top level is done: none
            return size
        y = ((g - 1) >> 3) + k + 1  # the next node after this group's parent
        end = ((end - 1) >> 3) + k + 1


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
    best = min(tree_min(tree, h0, h1), tree_top(tree) + path)
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
