"""The O(log N) tournament tree picks exactly the target of the full scan, ties included."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from otfr_vec.kernels.decision import tree_argmin, tree_build, tree_min, tree_set, tree_size
from otfr_vec.kernels.scoring import argmin_pods, argmin_score

# few distinct values, so ties (the seeded cyclic rule) and path-cost crossings are common;
# 0.1 + 0.2 style sums exercise rounding of v + path
BASES = [0.0, 0.1, 0.2, 0.25, 1.0, 1000.0]


@settings(max_examples=300, deadline=None)
@given(n_pods=st.integers(1, 7), k=st.integers(1, 6), data=st.data())
def test_tree_matches_full_scan_and_pod_minima(n_pods, k, data):
    n = n_pods * k
    lo = data.draw(st.integers(0, 3), label="lo")
    m = lo + n
    count = np.array(data.draw(st.lists(st.integers(0, 3), min_size=m, max_size=m)), np.int64)
    base = np.array(data.draw(st.lists(st.sampled_from(BASES), min_size=m, max_size=m)))
    pod = np.concatenate([np.zeros(lo, np.int64), np.repeat(np.arange(n_pods), k)])
    scale = data.draw(st.sampled_from([1.0, 0.5, 0.1, 1.0 / 48]), label="scale")
    path = data.draw(st.sampled_from([0.0, 0.1, 0.2, 1.0]), label="path")
    tree = np.zeros(tree_size(n))
    tree_build(tree, lo, m, count, scale, base)
    g_min, g_dirty = np.zeros((2, n_pods)), np.ones((2, n_pods), np.int64)
    for _ in range(data.draw(st.integers(1, 8), label="decisions")):
        home = data.draw(st.integers(0, n_pods - 1))
        start = data.draw(st.integers(0, 10**6))
        full = argmin_score(lo, m, count, scale, base, pod, home, path, start)
        got = tree_argmin(tree, lo, m, lo + home * k, lo + (home + 1) * k, path, start)
        pods = argmin_pods(
            g_min, g_dirty, 0, lo, k, n_pods, count, scale, base, pod, home, path, start
        )
        assert got == full == pods
        count[full] += 1  # a router's update between decisions
        tree_set(tree, lo, count, scale, base, full)
        g_dirty[0, pod[full]] = 1
        if data.draw(st.booleans(), label="release"):  # a departure elsewhere
            j = data.draw(st.integers(lo, m - 1))
            if count[j] > 0:
                count[j] -= 1
                tree_set(tree, lo, count, scale, base, j)
                g_dirty[0, pod[j]] = 1


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 700), seed=st.integers(0, 2**32 - 1))
def test_tree_set_keeps_the_tree_a_rebuild_gives(n, seed):
    """Leaves that rise, fall or stay (ties, held minima), up to four levels: after every
    refresh the whole tree equals one built from scratch."""
    g = np.random.default_rng(seed)
    lo = int(g.integers(0, 4))
    count = g.integers(0, 3, lo + n)
    base = g.choice(np.array(BASES), lo + n)
    tree, fresh = np.zeros(tree_size(n)), np.zeros(tree_size(n))
    tree_build(tree, lo, lo + n, count, 0.5, base)
    for _ in range(200):
        j = lo + int(g.integers(0, n))
        if g.random() < 0.5:
            count[j] = max(0, count[j] + int(g.integers(-1, 2)))
        else:
            base[j] = g.choice(np.array(BASES))
        tree_set(tree, lo, count, 0.5, base, j)
        tree_build(fresh, lo, lo + n, count, 0.5, base)
        assert np.array_equal(tree, fresh)


def test_every_tied_target_can_win_by_start():
    """All equal: the winner is exactly ``lo + start % n`` (home pod or not)."""
    n, lo = 12, 5
    count = np.zeros(lo + n, np.int64)
    base = np.zeros(lo + n)
    tree = np.zeros(tree_size(n))
    tree_build(tree, lo, lo + n, count, 1.0, base)
    for start in range(3 * n):
        assert tree_argmin(tree, lo, lo + n, lo + 4, lo + 8, 0.0, start) == lo + start % n


def test_path_cost_prefers_home_then_wraps():
    count = np.array([0, 0, 1, 1, 0, 0], np.int64)  # pods of 2: home pod 1 holds loads 1, 1
    base = np.zeros(6)
    tree = np.zeros(tree_size(6))
    tree_build(tree, 0, 6, count, 1.0, base)
    # path 2: home (1.0) beats away (0 + 2); from start 3 the first home target is 3
    assert tree_argmin(tree, 0, 6, 2, 4, 2.0, 3) == 3
    assert tree_argmin(tree, 0, 6, 2, 4, 2.0, 4) == 2  # wraps around to the home pod
    # path 0.5: away (0.5) beats home; from start 3 the cyclic order reaches 4 first
    assert tree_argmin(tree, 0, 6, 2, 4, 0.5, 3) == 4
    assert tree_argmin(tree, 0, 6, 2, 4, 0.5, 6 * 7 + 1) == 1


def test_tree_min_and_rebuild():
    rng = np.random.default_rng(3)
    count = rng.integers(0, 9, 37)
    base = rng.random(37)
    tree = np.zeros(tree_size(37))
    tree_build(tree, 0, 37, count, 0.25, base)
    v = count * 0.25 + base
    for a, b in [(0, 37), (3, 4), (5, 30), (36, 37), (7, 7)]:
        assert tree_min(tree, a, b) == (v[a:b].min() if b > a else np.inf)
    base[:] = 0.0  # a new step's prices
    tree_build(tree, 0, 37, count, 0.25, base)
    assert tree_min(tree, 0, 37) == count.min() * 0.25


def test_deep_trees_match_the_full_scan():
    """Trees of 2 to 5 levels, every top-level width: the same target as the full scan
    and the same range minima, while counts rise and fall as a router's do."""
    rng = np.random.default_rng(7)
    for n in (9, 63, 64, 65, 100, 511, 512, 513, 1024, 4097):
        lo = 3
        pods = max(1, n // 16)
        k = n // pods
        n = pods * k
        count = rng.integers(0, 3, lo + n)
        base = rng.choice(BASES, lo + n)
        pod = np.concatenate([np.zeros(lo, np.int64), np.repeat(np.arange(pods), k)])
        tree = np.zeros(tree_size(n))
        tree_build(tree, lo, lo + n, count, 0.5, base)
        for _ in range(300):
            home, start = rng.integers(0, pods), rng.integers(0, 10**6)
            path = rng.choice([0.0, 0.2, 1.0])
            full = argmin_score(lo, lo + n, count, 0.5, base, pod, home, path, start)
            got = tree_argmin(tree, lo, lo + n, lo + home * k, lo + (home + 1) * k, path, start)
            assert got == full, (n, home, start, path)
            a, b = sorted(rng.integers(0, n + 1, 2))
            v = count[lo:] * 0.5 + base[lo:]
            assert tree_min(tree, a, b) == (v[a:b].min() if b > a else np.inf), (n, a, b)
            count[full] += 1
            tree_set(tree, lo, count, 0.5, base, full)
            j = lo + rng.integers(0, n)
            if count[j] > 0:
                count[j] -= 1
                tree_set(tree, lo, count, 0.5, base, j)
